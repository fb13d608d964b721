"""vLLM for production GPUs: the command line the engine supervisor runs and the requests it sends.

vLLM serves the base model on a private port with LoRA enabled; each endpoint's adapter is loaded at run
time with the same request the built-in engine takes (POST /v1/load_lora_adapter), which vLLM accepts
when VLLM_ALLOW_RUNTIME_LORA_UPDATING is set. Requests then name the adapter in `model`, as with the
built-in engine, so the gateway treats both alike. vLLM is not installed by Atelier (it needs CUDA); put
it on the GPU host (`pip install vllm`) and choose the vLLM engine (ATELIER_ENGINE=vllm). No Django.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

# vLLM accepts these ranks only (--max-lora-rank).
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


class VllmMissing(RuntimeError):
    """vLLM is not installed where the supervisor runs."""


def lora_rank(adapter: str | Path) -> int:
    """An adapter's rank (r in adapter_config.json); 16 when it does not say."""
    try:
        config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return 16
    return int(config.get("r") or 16)


def max_lora_rank(ranks: list[int]) -> int:
    """The smallest rank vLLM accepts that fits every adapter."""
    need = max(ranks, default=8)
    return next((r for r in LORA_RANKS if r >= need), LORA_RANKS[-1])


def command(
    base: str,
    port: int,
    *,
    host: str = "127.0.0.1",
    served_name: str = "base",
    max_lora_rank: int = 16,
    max_loras: int = 8,
    executable: str | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """`vllm serve` for one base model, with room for `max_loras` adapters of rank up to `max_lora_rank`
    in one batch."""
    vllm = executable or shutil.which("vllm")
    if not vllm:
        raise VllmMissing(
            "The vLLM engine was chosen but vLLM is not installed on this machine: `pip install vllm` on the "
            "GPU host, or deploy with the built-in engine."
        )
    return [
        vllm, "serve", base,
        "--host", host,
        "--port", str(port),
        "--served-model-name", served_name,
        "--enable-lora",
        "--max-lora-rank", str(max_lora_rank),
        "--max-loras", str(max_loras),
        *(extra or []),
    ]  # fmt: skip


def environment() -> dict[str, str]:
    """What vLLM's process needs beside the supervisor's environment: runtime adapter loading."""
    return {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}


def load_adapter_request(name: str, path: str) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) that loads an adapter into a running engine, vLLM or built-in."""
    return "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path}


def unload_adapter_request(name: str) -> tuple[str, dict[str, Any]]:
    return "/v1/unload_lora_adapter", {"lora_name": name}
