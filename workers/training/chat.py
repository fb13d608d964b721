"""One chat request to any OpenAI-compatible server, for the AI judge and the synthetic-data teacher:
the standard library only, and every way it can fail sorted so each caller can say it in its words."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from typing import Any

from workers.training import outbound


class ChatFailed(Exception):
    """kind: "timeout", "http" (the server refused: `status`), "unreachable", "refused" (our outbound
    policy: workers.training.outbound) or "format" (an answer that is not OpenAI's); detail: the reason,
    for people."""

    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.status = kind, detail, status


def chat(
    base_url: str,
    model: str,
    messages: list[dict[str, str]],
    *,
    api_key: str | None = None,
    timeout: float = 60.0,
    temperature: float = 0.0,
    max_tokens: int = 256,
) -> str:
    """The assistant's reply text; ChatFailed when there is none."""
    body = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        outbound.check_url(base_url, base=True)
    except outbound.OutboundRefused as exc:
        raise ChatFailed("refused", str(exc)) from exc
    request = urllib.request.Request(  # noqa: S310 - the server's URL is the user's choice
        f"{base_url.rstrip('/')}/chat/completions", data=json.dumps(body).encode(), headers=headers
    )
    try:
        with outbound.urlopen(request, timeout=timeout) as response:
            data: Any = json.loads(response.read())
    except outbound.OutboundRefused as exc:
        raise ChatFailed("refused", str(exc)) from exc
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = str(json.loads(detail)["error"]["message"])
        raise ChatFailed("http", detail or str(exc), exc.code) from exc
    except TimeoutError as exc:
        raise ChatFailed("timeout", f"no answer within {timeout:g} s") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ChatFailed("unreachable", str(getattr(exc, "reason", exc))) from exc
    except ValueError as exc:
        raise ChatFailed("format", f"the answer is not JSON: {exc}") from exc
    try:
        return str(data["choices"][0]["message"]["content"] or "")
    except (KeyError, IndexError, TypeError) as exc:
        raise ChatFailed("format", f"the answer is not in the OpenAI format ({exc!r} missing)") from exc
