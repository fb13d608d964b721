"""Serving: the built-in engine's throughput under concurrent requests, and what the gateway adds.

In a fresh data folder (its own SQLite database and embedded Redis) it deploys the tiny model (partly
trained) the way a person does, starts the real engine supervisor and the web app under uvicorn, and
measures:
- tokens/s of sequential `model.generate` in this process (one prompt at a time: the baseline);
- tokens/s of the engine at 1, 4 and 16 concurrent requests (straight to its port), and at 16 through the
  gateway; every request asks for --max-tokens tokens with `ignore_eos`, so each side makes the same
  number of tokens; the ratio to the baseline (goal: at least 4x at 16);
- the gateway's added latency: one-token requests, alternately through /v1 (key check, rate limit,
  routing, usage counting) and straight to the engine, p50 and p95 of each.

    python bench/serving.py [--requests 96] [--max-tokens 64] [--latency-requests 200]

Prints a table and writes bench/results/serving.json. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001, S110 - not ready yet
            pass
        time.sleep(0.2)
    raise TimeoutError(what)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prompts(n: int) -> list[list[dict[str, str]]]:
    from workers.training import tiny
    from workers.training.data import eval_row, read_rows

    rows = [eval_row(r) for r in read_rows(tiny.DEMO / "reverse" / "eval.jsonl")]
    prompts = [r["prompt"] for r in rows if r]
    return [prompts[i % len(prompts)] for i in range(n)]


def sequential_generate(model_dir: Path, prompts: list, max_tokens: int) -> dict[str, float]:
    """The baseline: transformers' generate, one prompt at a time, greedy, exactly max_tokens tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokens = 0
    began = time.perf_counter()
    with torch.no_grad():
        for prompt in prompts:
            text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
            out = model.generate(**ids, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)  # fmt: skip
            tokens += out.shape[1] - ids["input_ids"].shape[1]
    seconds = time.perf_counter() - began
    return {
        "requests": len(prompts),
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
    }


async def load(
    url: str, key: str, model: str, prompts: list, concurrency: int, max_tokens: int
) -> dict[str, float]:
    """`concurrency` clients sending the prompts until all are answered; generated tokens per second."""
    import httpx

    todo = list(prompts)
    tokens = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal tokens
        while todo:
            prompt = todo.pop()
            response = await http.post(f"{url}/chat/completions", json={
                "model": model, "messages": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
            }, headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            response.raise_for_status()
            tokens += response.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=64)) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    return {"concurrency": concurrency, "requests": len(prompts), "tokens": tokens, "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1)}  # fmt: skip


def latency(gateway: str, engine: str, key: str, name: str, served: str, n: int) -> dict[str, Any]:
    """One-token requests, alternating gateway and engine, one at a time; milliseconds."""
    import httpx

    times: dict[str, list[float]] = {"gateway": [], "engine": []}
    body = {"messages": [{"role": "user", "content": "reverse: a b"}], "max_tokens": 1, "temperature": 0}
    with httpx.Client(timeout=60) as http:
        for i in range(n + 10):
            for side, url, model in (("gateway", gateway, name), ("engine", engine, served)):
                began = time.perf_counter()
                response = http.post(f"{url}/chat/completions", json={**body, "model": model},
                                     headers={"Authorization": f"Bearer {key}"})  # fmt: skip
                response.raise_for_status()
                if i >= 10:  # the first ones warm connections and caches
                    times[side].append((time.perf_counter() - began) * 1000)

    def pct(values: list[float], q: float) -> float:
        return round(statistics.quantiles(values, n=100)[int(q) - 1], 2)

    out: dict[str, Any] = {side: {"p50_ms": pct(v, 50), "p95_ms": pct(v, 95)} for side, v in times.items()}
    out["added_p50_ms"] = round(out["gateway"]["p50_ms"] - out["engine"]["p50_ms"], 2)
    out["added_p95_ms"] = round(out["gateway"]["p95_ms"] - out["engine"]["p95_ms"], 2)
    out["requests"] = n
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=96, help="requests per concurrency level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--latency-requests", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "serving.json"))
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="atelier-bench-serving-"))
    web_port = _port()
    os.environ.update({
        "ATELIER_DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{data / 'bench.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "apps.settings", "ATELIER_REDIS_PORT": str(_port()),
        "ATELIER_RATE_LIMIT_PER_MINUTE": "1000000",
    })  # fmt: skip
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from apps.endpoints.models import Endpoint
    from apps.endpoints.services import api_key_create, endpoint_deploy
    from apps.projects.services import project_create
    from workers.training import tiny

    call_command("migrate", verbosity=0)
    models = ROOT / "var" / "models" / "atelier-tiny"
    tiny.build(models)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")  # noqa: S106
    project = project_create(user=user, name="bench")
    endpoint = endpoint_deploy(
        project=project, user=user, model=str(models / "partial"), name="tiny", idle_seconds=0
    )
    _, key = api_key_create(project=project, user=user, name="bench")

    logs = (data / "logs").open("w")
    py = sys.executable
    processes = [
        subprocess.Popen([py, "-m", "apps.launcher", "redis"], cwd=ROOT, stdout=logs, stderr=logs),
        subprocess.Popen([py, "-m", "workers.engines"], cwd=ROOT, stdout=logs, stderr=logs),
        subprocess.Popen([py, "-m", "uvicorn", "apps.asgi:application", "--port", str(web_port), "--lifespan", "off",
                          "--no-access-log", "--log-level", "warning"], cwd=ROOT, stdout=logs, stderr=logs),
    ]  # fmt: skip
    try:
        _wait(
            lambda: Endpoint.objects.get(pk=endpoint.pk).status == "ready",
            180,
            "the endpoint did not get ready",
        )
        endpoint.refresh_from_db()
        assert endpoint.engine is not None
        engine_url, gateway_url = f"{endpoint.engine.url}/v1", f"http://127.0.0.1:{web_port}/v1"
        prompts = _prompts(args.requests)
        baseline = sequential_generate(models / "partial", prompts, args.max_tokens)
        levels = [asyncio.run(load(engine_url, key, "base", prompts, c, args.max_tokens)) for c in (1, 4, 16)]
        through = asyncio.run(load(gateway_url, key, "tiny", prompts, 16, args.max_tokens))
        lat = latency(gateway_url, engine_url, key, "tiny", "base", args.latency_requests)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)

    for level in [*levels, through]:
        level["ratio_to_sequential"] = round(level["tokens_per_s"] / baseline["tokens_per_s"], 2)
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "model": "atelier-tiny/partial", "max_tokens": args.max_tokens,
        "sequential_generate": baseline, "engine": levels, "gateway_16": through, "latency": lat,
    }  # fmt: skip
    print(f"{'':<28}{'tokens/s':>10}{'x sequential':>14}")
    print(f"{'sequential generate':<28}{baseline['tokens_per_s']:>10.1f}{1.0:>14.2f}")
    for level in levels:
        print(
            f"{'engine, ' + str(level['concurrency']) + ' concurrent':<28}{level['tokens_per_s']:>10.1f}{level['ratio_to_sequential']:>14.2f}"
        )
    print(
        f"{'gateway, 16 concurrent':<28}{through['tokens_per_s']:>10.1f}{through['ratio_to_sequential']:>14.2f}"
    )
    print(f"\n{'one-token request':<28}{'p50 ms':>10}{'p95 ms':>10}")
    for side in ("engine", "gateway"):
        print(f"{side:<28}{lat[side]['p50_ms']:>10.2f}{lat[side]['p95_ms']:>10.2f}")
    print(f"{'added by the gateway':<28}{lat['added_p50_ms']:>10.2f}{lat['added_p95_ms']:>10.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
