"""Taking a customized model out of Atelier: download its adapter or full model (safetensors, as a zip
streamed while it is written), merge an adapter into its base (a worker task), push to the Hugging
Face Hub with a token."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from django.http import Http404, StreamingHttpResponse

from apps.endpoints.models import Endpoint
from workers.training.models import merged_folder

# What a model folder may ship: weights as safetensors only (never pickles), configs, tokenizer files.
SHIPPED = re.compile(r"\.(safetensors|json|txt|model|md|jinja|tiktoken)$")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class ExportError(Exception):
    """Something a person can fix, said in words."""


def merged_dir(endpoint: Endpoint) -> Path:
    """Beside the job's other outputs (its folder name is unique, so a new database never finds an old
    merge): the same folder a job chained from this one trains from (workers.training.models), so a
    merge made for either is the other's too. Endpoints of a base model have nothing to merge."""
    folder = merged_folder(endpoint.adapter) if endpoint.job is not None and endpoint.adapter else None
    if folder is None:
        raise ExportError("Only a customized model (a job's adapter) can be merged.")
    return folder


def available(endpoint: Endpoint) -> dict[str, Any]:
    """What this endpoint's model can be downloaded as: a job's adapter or full model, and a merged
    model once merged. A base model deployed from the catalog is someone else's: nothing to export."""
    if endpoint.job_id is None:
        return {}
    found: dict[str, Any] = {}
    if endpoint.adapter and Path(endpoint.adapter).is_dir():
        found["adapter"] = endpoint.adapter
        merged = merged_dir(endpoint)
        if (merged / "config.json").exists():
            found["merged"] = str(merged)
        elif merged.with_name("merging").exists():
            found["merging"] = True
    elif Path(endpoint.base).is_dir():
        found["model"] = endpoint.base
    return found


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and SHIPPED.search(p.name))


class _Pipe:
    """A write-only stream that zipfile writes into and the response reads from."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def zip_stream(folder: Path, prefix: str) -> Iterator[bytes]:
    pipe = _Pipe()
    with zipfile.ZipFile(cast(Any, pipe), "w", zipfile.ZIP_STORED) as archive:
        for path in _files(folder):
            with path.open("rb") as src, archive.open(f"{prefix}/{path.name}", "w", force_zip64=True) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    yield pipe.take()
    yield pipe.take()


def download(endpoint: Endpoint, what: str) -> StreamingHttpResponse:
    folder = available(endpoint).get(what)
    if not isinstance(folder, str):
        raise Http404("Nothing of that kind to download for this endpoint.")
    name = f"{endpoint.name}-{what}"
    response = StreamingHttpResponse(zip_stream(Path(folder), name), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


def merge_start(endpoint: Endpoint) -> None:
    from workers.tasks import endpoint_merge

    if not endpoint.adapter:
        raise ExportError("This endpoint serves a full model; there is no adapter to merge.")
    marker = merged_dir(endpoint).with_name("merging")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    endpoint_merge.delay(endpoint.pk)


def merge(endpoint_id: int) -> None:
    """Merge in a subprocess (the training layer; torch stays out of the worker's process). It writes
    the folder once, atomically and under a lock: a chained job may be reading or writing it."""
    endpoint = Endpoint.objects.get(pk=endpoint_id)
    out = merged_dir(endpoint)
    try:
        subprocess.run(
            [sys.executable, "-m", "workers.training", "merge", endpoint.adapter, str(out)],
            check=True, capture_output=True, timeout=3600,
        )  # fmt: skip
    finally:
        out.with_name("merging").unlink(missing_ok=True)


def push_to_hub(endpoint: Endpoint, *, what: str, repo_id: str, token: str, private: bool = True) -> str:
    """Upload the adapter, full or merged model to a Hub repository (created if missing); its URL."""
    folder = available(endpoint).get(what)
    if not isinstance(folder, str):
        raise ExportError(
            "Nothing of that kind to push for this endpoint (merge the adapter first for a merged model)."
        )
    if not REPO_ID.match(repo_id):
        raise ExportError("The repository must look like owner/name, for example my-org/support-bot-lora.")
    if not token:
        raise ExportError(
            "A Hugging Face token with write access is needed (huggingface.co/settings/tokens)."
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(token=token, endpoint=os.environ.get("HF_ENDPOINT"))
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            folder_path=folder, repo_id=repo_id, repo_type="model",
            allow_patterns=[f"*{ext}" for ext in (".safetensors", ".json", ".txt", ".model", ".md", ".jinja")],
            commit_message=f"Upload {what} of {endpoint.label or endpoint.name} from Atelier",
        )  # fmt: skip
    except OfflineModeIsEnabled as exc:
        raise ExportError("The Hugging Face Hub is switched off on this server (HF_HUB_OFFLINE).") from exc
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise ExportError(
                f"The Hub refused the token for {repo_id} ({status}): it needs write access to that repository."
            ) from exc
        raise ExportError(f"The Hub answered with an error: {str(exc).splitlines()[0]}") from exc
    except Exception as exc:
        # No network, no DNS, a refused connection or a timeout: httpx, requests and the standard library
        # each have their own class for it.
        kinds = {c.__name__ for c in type(exc).__mro__}
        if kinds & {"TransportError", "ConnectionError", "Timeout", "TimeoutError", "URLError", "OSError"}:
            raise ExportError(
                f"The Hugging Face Hub cannot be reached from this server ({type(exc).__name__}: {exc}). "
                "Download the files instead, or push from a machine with internet access."
            ) from exc
        raise
    return f"https://huggingface.co/{repo_id}"
