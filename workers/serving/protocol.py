"""The OpenAI wire format that the built-in engine and the gateway both speak: request checks, response
bodies, stream chunks and errors. Pure Python (no Django, no torch), so the gateway can use it too."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

MAX_TOKENS_DEFAULT = 256
MAX_CHOICES = 8


class ApiError(Exception):
    """An error with OpenAI's shape: {"error": {"message", "type", "param", "code"}} and a status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def model_not_found(name: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{name}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


@dataclass
class Sampling:
    """One request's generation settings, checked against what the engine can do."""

    max_tokens: int = MAX_TOKENS_DEFAULT
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    ignore_eos: bool = False  # vLLM's extension: generate max_tokens whatever the model says (benchmarks)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"`{name}` must be a number.", param=name)
    if not low <= value <= high:
        raise ApiError(400, f"`{name}` must be between {low:g} and {high:g}; it was {value}.", param=name)
    return float(value)


def _integer(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"`{name}` must be a whole number.", param=name)
    if not low <= value <= high:
        raise ApiError(400, f"`{name}` must be between {low} and {high}; it was {value}.", param=name)
    return value


def sampling(body: dict[str, Any]) -> Sampling:
    tokens_name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _integer(body, tokens_name, MAX_TOKENS_DEFAULT, 1, 1_000_000)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) and s for s in stop)):
        raise ApiError(400, "`stop` must be a string or a list of non-empty strings.", param="stop")
    return Sampling(
        max_tokens=int(max_tokens or MAX_TOKENS_DEFAULT),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        seed=_integer(body, "seed", None, -(2**63), 2**63 - 1),
        stop=list(stop or [])[:4],
        n=int(_integer(body, "n", 1, 1, MAX_CHOICES) or 1),
        ignore_eos=bool(body.get("ignore_eos", False)),
    )


def json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}.") from exc
    except RecursionError as exc:  # "[[[[…" a few hundred thousand deep: the decoder runs out of stack
        raise ApiError(400, "The request body is not valid JSON: it is nested too deeply.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "`model` is required: the name of the endpoint to use.", param="model")
    return body


def chat_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "`messages` must be a non-empty list of messages.", param="messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
        ):
            raise ApiError(
                400, f"messages[{i}] needs a role: system, user or assistant.", param=f"messages[{i}]"
            )
        content = message.get("content")
        if isinstance(content, list):  # content parts: only text is understood here
            texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if len(texts) != len(content):
                raise ApiError(
                    400,
                    f"messages[{i}] has a part that is not text; this model reads text only.",
                    param=f"messages[{i}]",
                )
            content = "".join(str(t) for t in texts)
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be text.", param=f"messages[{i}].content")
        role = "system" if message["role"] == "developer" else message["role"]
        out.append({"role": role, "content": content})
    return out


def completion_prompts(body: dict[str, Any]) -> list[str]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    raise ApiError(400, "`prompt` must be a string or a list of strings.", param="prompt")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _body(
    object: str,
    id: str,
    model: str,
    created: int,
    choices: list[dict[str, Any]],
    usage_: dict[str, int] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": id,
        "object": object,
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage_ is not None:
        body["usage"] = usage_
    return body


def chat_completion(
    id: str,
    model: str,
    choices: list[tuple[str, str]],
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    rows = [
        {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "finish_reason": reason,
            "logprobs": None,
        }
        for i, (text, reason) in enumerate(choices)
    ]
    return _body(
        "chat.completion", id, model, int(time.time()), rows, usage(prompt_tokens, completion_tokens)
    )


def chat_chunk(
    id: str,
    model: str,
    created: int,
    index: int | None,
    delta: dict[str, str] | None = None,
    finish_reason: str | None = None,
    usage_: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One streamed piece; index None: the closing chunk that carries only the usage."""
    rows = (
        []
        if index is None
        else [{"index": index, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
    )
    return _body("chat.completion.chunk", id, model, created, rows, usage_)


def text_completion(
    id: str,
    model: str,
    choices: list[tuple[str, str]],
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    rows = [
        {"index": i, "text": text, "finish_reason": reason, "logprobs": None}
        for i, (text, reason) in enumerate(choices)
    ]
    return _body(
        "text_completion", id, model, int(time.time()), rows, usage(prompt_tokens, completion_tokens)
    )


def text_chunk(
    id: str,
    model: str,
    created: int,
    index: int | None,
    text: str = "",
    finish_reason: str | None = None,
    usage_: dict[str, int] | None = None,
) -> dict[str, Any]:
    rows = (
        []
        if index is None
        else [{"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}]
    )
    return _body("text_completion", id, model, created, rows, usage_)


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event; the stream ends with sse("[DONE]")."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()
