"""The engine supervisor keeps engines alive and lean: a killed engine is restarted and the next request
succeeds; an idle one is stopped (its memory freed) and the next request starts it again; one that
cannot load says why; undeploying stops it."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import openai
import psutil
import pytest

from apps.endpoints.models import Endpoint, Engine
from apps.endpoints.services import api_key_create, endpoint_deploy, endpoint_redeploy, endpoint_undeploy
from tests.endpoints.conftest import client_for, status_of, wait_for, wait_ready

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
HELLO: Any = [{"role": "user", "content": "reverse: a b c"}]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def deploy(alice, alice_project, asgi_server, engine_supervisor, tiny_model):
    def deploy_(model: str | None = None, **options) -> tuple[Endpoint, openai.OpenAI]:
        endpoint = endpoint_deploy(
            project=alice_project, user=alice, model=model or str(tiny_model / "partial"), **options
        )
        _, key = api_key_create(project=alice_project, user=alice, name="tests")
        return endpoint, client_for(asgi_server, key)

    return deploy_


def test_a_killed_engine_is_restarted_and_the_next_request_succeeds(deploy):
    endpoint, client = deploy(name="sturdy")
    wait_ready(endpoint.pk)
    first = client.chat.completions.create(model="sturdy", messages=HELLO, temperature=0)
    engine = Engine.objects.get(endpoints=endpoint)
    assert engine.pid
    os.kill(engine.pid, signal.SIGKILL)
    again = client.chat.completions.create(
        model="sturdy", messages=HELLO, temperature=0
    )  # waits for the restart
    assert again.choices[0].message.content == first.choices[0].message.content
    restarted = Engine.objects.get(pk=engine.pk)
    assert restarted.restarts == 1 and restarted.pid != engine.pid and restarted.status == "ready"
    assert "stopped unexpectedly" in restarted.message


def test_an_idle_engine_scales_to_zero_and_the_next_request_brings_it_back(deploy):
    endpoint, client = deploy(name="sleepy", idle_seconds=2)
    wait_ready(endpoint.pk)
    client.chat.completions.create(model="sleepy", messages=HELLO, max_tokens=4)
    engine = Engine.objects.get(endpoints=endpoint)
    assert engine.memory_bytes and engine.memory_bytes > 50_000_000  # torch and the model, while up
    wait_for(lambda: status_of(endpoint.pk) == "idle", 30, "scale to zero")
    idle = Engine.objects.get(pk=engine.pk)
    assert idle.status == "idle" and idle.pid is None and idle.memory_bytes is None
    assert engine.pid and _gone(engine.pid)  # the process and all its memory are gone
    assert "sleepy" in {m.id for m in client.models.list()}  # still listed: it is deployed, only asleep
    answer = client.chat.completions.create(model="sleepy", messages=HELLO, max_tokens=4)
    assert answer.choices[0].message.content and answer.usage and answer.usage.completion_tokens >= 1
    awake = Engine.objects.get(pk=engine.pk)
    assert awake.status == "ready" and awake.pid not in (None, engine.pid) and awake.restarts == 0


def test_an_engine_that_cannot_load_its_model_says_why(deploy, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    endpoint, client = deploy(model=str(broken), name="broken")
    wait_for(lambda: status_of(endpoint.pk) == "failed", 90, "the engine to give up")
    message = Endpoint.objects.get(pk=endpoint.pk).message
    assert "no-such-architecture" in message or "broken-model" in message, message
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="broken", messages=HELLO)
    assert error.value.status_code == 503 and "cannot serve" in error.value.message


def test_undeploying_stops_the_engine_and_deploying_again_brings_it_back(deploy, alice):
    endpoint, client = deploy(name="shortlived")
    wait_ready(endpoint.pk)
    client.chat.completions.create(model="shortlived", messages=HELLO, max_tokens=2)
    pid = Engine.objects.get(endpoints=endpoint).pid
    assert pid
    endpoint_undeploy(endpoint=endpoint, user=alice)
    wait_for(lambda: not Engine.objects.exists(), 30, "the engine row to go")
    wait_for(lambda: _gone(pid), 30, "the engine process to stop")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="shortlived", messages=HELLO)
    assert "shortlived" not in {m.id for m in client.models.list()}
    endpoint_redeploy(endpoint=endpoint, user=alice)
    wait_ready(endpoint.pk)
    again = client.chat.completions.create(model="shortlived", messages=HELLO, max_tokens=2)
    assert again.model == "shortlived"
    assert Endpoint.objects.get(pk=endpoint.pk).requests == 2  # the same endpoint: its usage carried on


def test_the_vllm_engine_is_started_with_runtime_lora_and_gets_the_adapter_loaded(deploy, lora_adapter):
    """Up to vLLM itself: `vllm` here is tests/serving/vllm_stand_in (vLLM needs CUDA), which records what
    the supervisor ran and serves vLLM's API with the built-in engine."""
    from tests.conftest import LOGS
    from workers.serving import vllm

    calls = LOGS / "vllm-calls.jsonl"
    calls.unlink(missing_ok=True)
    endpoint, client = deploy(model=str(lora_adapter), name="on-vllm", engine_kind="vllm")
    wait_ready(endpoint.pk)
    answer = client.chat.completions.create(model="on-vllm", messages=HELLO, temperature=0, max_tokens=8)
    assert answer.model == "on-vllm" and answer.choices[0].message.content
    call = json.loads(calls.read_text().splitlines()[-1])
    argv = call["argv"]
    assert argv[:2] == ["serve", endpoint.base] and "--enable-lora" in argv
    rank = vllm.max_lora_rank([16, vllm.lora_rank(lora_adapter)])  # vLLM's ranks: 8, 16, 32...
    assert (
        argv[argv.index("--max-lora-rank") + 1] == str(rank) and argv[argv.index("--host") + 1] == "127.0.0.1"
    )
    assert argv[argv.index("--served-model-name") + 1] == "base"
    assert call["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    engine = Engine.objects.get(endpoints=endpoint)
    assert engine.kind == "vllm" and engine.status == "ready"
