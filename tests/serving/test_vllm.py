"""vLLM cannot be installed here (it needs CUDA): the command line the supervisor runs and the requests it
sends are checked instead; the built-in engine takes the same adapter requests (tests/serving/test_engine)."""

from __future__ import annotations

import json

import pytest

from workers.serving import vllm


def test_the_command_serves_the_base_with_runtime_lora_on_a_private_port():
    args = vllm.command("Qwen/Qwen2.5-0.5B-Instruct", 8123, max_lora_rank=32, executable="/opt/vllm/bin/vllm")
    assert args[:3] == ["/opt/vllm/bin/vllm", "serve", "Qwen/Qwen2.5-0.5B-Instruct"]

    def flag(name: str) -> str:
        return args[args.index(name) + 1]

    flags = {name: flag(name) for name in ("--host", "--port", "--served-model-name", "--max-lora-rank")}
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "8123"
    assert flags["--served-model-name"] == "base" and flags["--max-lora-rank"] == "32"
    assert "--enable-lora" in args
    assert vllm.environment() == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}


def test_the_rank_is_rounded_up_to_one_vllm_accepts(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 12}))
    assert vllm.lora_rank(tmp_path) == 12
    assert vllm.max_lora_rank([12, 4]) == 16
    assert vllm.max_lora_rank([64]) == 64
    assert vllm.max_lora_rank([]) == 8


def test_adapter_requests_match_vllms_api():
    assert vllm.load_adapter_request("adapter-3", "/data/a") == (
        "/v1/load_lora_adapter", {"lora_name": "adapter-3", "lora_path": "/data/a"}
    )  # fmt: skip
    assert vllm.unload_adapter_request("adapter-3") == ("/v1/unload_lora_adapter", {"lora_name": "adapter-3"})


def test_a_missing_vllm_is_said_plainly(monkeypatch):
    monkeypatch.setattr(vllm.shutil, "which", lambda name: None)
    with pytest.raises(vllm.VllmMissing, match="pip install vllm"):
        vllm.command("some/model", 8000)
