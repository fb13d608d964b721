"""What `vllm` does in the tests (vLLM needs CUDA and cannot be installed on the development machine): it
records the command line and environment the engine supervisor gives vLLM, refuses to start without
runtime LoRA, and serves vLLM's OpenAI and runtime-adapter API with Atelier's built-in engine, so the
supervisor's vLLM path (command, environment, adapter loading, routing) runs for real up to vLLM itself."""

from __future__ import annotations

import json
import os
import sys

args = sys.argv[1:]
record = {
    "argv": args,
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING": os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING"),
}
if os.environ.get("ATELIER_TEST_VLLM_LOG"):
    with open(os.environ["ATELIER_TEST_VLLM_LOG"], "a") as log:
        log.write(json.dumps(record) + "\n")


def flag(name: str) -> str:
    return args[args.index(name) + 1]


if (
    args[:1] != ["serve"]
    or "--enable-lora" not in args
    or record["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] != "True"
):
    print("ENGINE FAILED: not the command line vLLM needs for runtime LoRA adapters", file=sys.stderr)
    sys.exit(3)
os.execv(sys.executable, [
    sys.executable, "-m", "workers.serving", "engine", "--model", args[1], "--host", flag("--host"),
    "--port", flag("--port"), "--name", flag("--served-model-name"),
])  # fmt: skip
