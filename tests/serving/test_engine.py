"""The built-in engine as its own process, called with the official openai client: greedy answers equal
the training layer's batched `generate`, concurrent requests for the base and an adapter share batches,
and every limit and error keeps OpenAI's shape."""

from __future__ import annotations

import concurrent.futures
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import LOGS, free_port
from tests.harness import Service, python
from workers.training import tiny
from workers.training.data import eval_row


@pytest.fixture(scope="module")
def engine(tiny_model, lora_adapter) -> Iterator[str]:
    port = free_port()
    service = Service(
        "engine-direct",
        python("-m", "workers.serving", "engine", "--model", str(tiny_model / "partial"), "--port", str(port),
               "--adapter", f"reverser={lora_adapter}"),
        LOGS,
    )  # fmt: skip

    def healthy() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return json.loads(response.read())["status"] == "ok"

    service.wait_until(healthy, 90, "healthy")
    yield f"http://127.0.0.1:{port}"
    service.stop()


@pytest.fixture(scope="module")
def client(engine) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{engine}/v1", api_key="unused", max_retries=0, _strict_response_validation=True
    )


def _rows(n: int) -> list[dict]:
    lines = (tiny.DEMO / "reverse" / "eval.jsonl").read_text().splitlines()[:n]
    return [r for r in (eval_row(json.loads(line)) for line in lines) if r]


def _reference(model_path: Path | str, prompts: list) -> list[str]:
    from workers.training.generation import generate
    from workers.training.models import load_model, load_tokenizer
    from workers.training.spec import ModelRef

    ref = ModelRef(str(model_path))
    return generate(load_model(ref), load_tokenizer(ref), prompts, max_new_tokens=24)


def test_concurrent_greedy_answers_equal_the_training_layers_generate_for_base_and_adapter(
    client, tiny_model, lora_adapter
):
    rows = _rows(16)
    prompts = [r["prompt"] for r in rows]
    want = {
        "base": _reference(tiny_model / "partial", prompts),
        "reverser": _reference(lora_adapter, prompts),
    }
    assert want["base"] != want["reverser"]  # the adapter changed something, so routing is tested

    def ask(job: tuple[str, int]) -> str:
        model, i = job
        answer = client.chat.completions.create(
            model=model, messages=prompts[i], max_tokens=24, temperature=0
        )
        return (answer.choices[0].message.content or "").strip()

    jobs = [(m, i) for i in range(len(rows)) for m in ("base", "reverser")]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:  # base and adapter rows mixed in the batches
        got = dict(zip(jobs, pool.map(ask, jobs), strict=True))
    for model in ("base", "reverser"):
        assert [got[(model, i)] for i in range(len(rows))] == want[model]


def test_each_request_keeps_its_own_token_limit_stop_strings_and_seed(client):
    prompt = [{"role": "user", "content": "reverse: a b c d e"}]
    one = client.chat.completions.create(model="base", messages=prompt, max_tokens=1)
    assert one.choices[0].finish_reason == "length" and one.usage and one.usage.completion_tokens == 1
    full = client.chat.completions.create(model="reverser", messages=prompt, temperature=0, max_tokens=24)
    text = full.choices[0].message.content or ""
    assert full.choices[0].finish_reason == "stop" and len(text) > 3
    stopped = client.chat.completions.create(
        model="reverser", messages=prompt, temperature=0, stop=[text[2:4]]
    )
    assert stopped.choices[0].message.content == text[:2] and stopped.choices[0].finish_reason == "stop"
    seeded = [
        client.chat.completions.create(
            model="base", messages=prompt, temperature=1.5, seed=7, n=2, max_tokens=12
        )
        for _ in range(2)
    ]
    assert [c.message.content for c in seeded[0].choices] == [c.message.content for c in seeded[1].choices]
    assert len(seeded[0].choices) == 2 and seeded[0].usage and seeded[0].usage.completion_tokens > 0


def test_streaming_sends_tokens_as_they_come_and_ends_with_usage(client):
    prompt = [{"role": "user", "content": "reverse: h o u s e"}]
    chunks = list(client.chat.completions.create(
        model="reverser", messages=prompt, temperature=0, stream=True, stream_options={"include_usage": True}
    ))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = client.chat.completions.create(model="reverser", messages=prompt, temperature=0)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 3
    assert chunks[-1].choices == [] and chunks[-1].usage and chunks[-1].usage.completion_tokens > 0


def test_text_completions_take_a_raw_prompt(client):
    answer = client.completions.create(model="base", prompt="reverse: a b", max_tokens=3, temperature=0)
    assert answer.choices[0].finish_reason in ("length", "stop") and answer.usage
    assert answer.usage.prompt_tokens > 0 and answer.object == "text_completion"


def test_bad_requests_get_openai_shaped_errors(client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as hot:
        client.chat.completions.create(
            model="base", messages=[{"role": "user", "content": "hi"}], temperature=3
        )
    assert "temperature" in hot.value.message
    with pytest.raises(openai.BadRequestError) as long:
        client.chat.completions.create(model="base", messages=[{"role": "user", "content": "a " * 2100}])
    assert long.value.code == "context_length_exceeded"


def test_adapters_load_and_unload_at_run_time_with_vllms_requests(engine, client, lora_adapter):
    from workers.engines import _http
    from workers.serving import vllm

    path, body = vllm.load_adapter_request("second", str(lora_adapter))
    assert "Success" in _http(engine + path, body)
    assert {m.id for m in client.models.list()} == {"base", "reverser", "second"}
    answer = client.chat.completions.create(
        model="second", messages=[{"role": "user", "content": "reverse: o k"}]
    )
    assert answer.model == "second"
    path, body = vllm.unload_adapter_request("second")
    _http(engine + path, body)
    assert {m.id for m in client.models.list()} == {"base", "reverser"}
