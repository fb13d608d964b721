"""The gateway under uvicorn with the real engine supervisor and built-in engine, called with the official
openai client: one project's endpoints (the tiny base and an adapter on it, one engine), another
project's endpoint beside them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest

from apps.endpoints.services import api_key_create, endpoint_deploy
from apps.projects.services import project_create
from tests.endpoints.conftest import client_for, wait_ready
from tests.factories import UserFactory

pytestmark = pytest.mark.services
REVERSE: Any = [{"role": "user", "content": "reverse: h o u s e"}]


@pytest.fixture(scope="module")
def world(
    django_db_blocker, asgi_server, engine_supervisor, tiny_model, lora_adapter
) -> Iterator[SimpleNamespace]:
    """Committed rows (the gateway is another process), made once for the module and removed after it."""
    with django_db_blocker.unblock():
        alice: Any = UserFactory(username="gw-alice")
        bob: Any = UserFactory(username="gw-bob")
        mine = project_create(user=alice, name="Gateway")
        theirs = project_create(user=bob, name="Elsewhere")
        base = endpoint_deploy(project=mine, user=alice, model=str(tiny_model / "partial"), name="tiny-base")
        custom = endpoint_deploy(project=mine, user=alice, model=str(lora_adapter), name="tiny-reverser")
        secret = endpoint_deploy(
            project=theirs, user=bob, model=str(tiny_model / "base"), name="secret-model"
        )
        _, key = api_key_create(project=mine, user=alice, name="tests")
        _, their_key = api_key_create(project=theirs, user=bob, name="theirs")
        for endpoint in (base, custom, secret):
            wait_ready(endpoint.pk)
    yield SimpleNamespace(url=asgi_server, key=key, their_key=their_key, base=base, custom=custom, secret=secret,
                          mine=mine, alice=alice)  # fmt: skip
    with django_db_blocker.unblock():
        mine.delete()
        theirs.delete()
        alice.delete()
        bob.delete()


@pytest.fixture
def client(world) -> openai.OpenAI:
    return client_for(world.url, world.key)


def test_the_client_lists_this_projects_endpoints_only(client, world):
    names = {m.id for m in client.models.list()}
    assert names == {"tiny-base", "tiny-reverser"}
    assert {m.id for m in client_for(world.url, world.their_key).models.list()} == {"secret-model"}


def test_a_chat_completion_comes_from_the_customized_model_and_is_counted(
    client, world, django_db_blocker, lora_adapter
):
    from apps.endpoints.models import Endpoint
    from workers.training.generation import generate
    from workers.training.models import load_model, load_tokenizer
    from workers.training.spec import ModelRef

    ref = ModelRef(str(lora_adapter))
    want = generate(load_model(ref), load_tokenizer(ref), [REVERSE], max_new_tokens=24)[0]
    answer = client.chat.completions.create(
        model="tiny-reverser", messages=REVERSE, temperature=0, max_tokens=24
    )
    assert answer.model == "tiny-reverser" and answer.object == "chat.completion"
    assert (answer.choices[0].message.content or "").strip() == want
    base = client.chat.completions.create(model="tiny-base", messages=REVERSE, temperature=0, max_tokens=24)
    assert base.choices[0].message.content != answer.choices[0].message.content  # routed by `model`
    with django_db_blocker.unblock():
        counted = Endpoint.objects.get(pk=world.custom.pk)
    assert counted.requests >= 1 and counted.completion_tokens >= answer.usage.completion_tokens > 0
    assert counted.prompt_tokens >= answer.usage.prompt_tokens > 0 and counted.last_request_at


def test_streaming_sends_chunks_ends_with_done_and_gives_usage_when_asked(client, world):
    stream = client.chat.completions.create(
        model="tiny-reverser",
        messages=REVERSE,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and all(c.model == "tiny-reverser" for c in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage and chunks[-1].usage.completion_tokens > 0
    # On the wire: server-sent events ending with [DONE]; no usage chunk unless asked for.
    with httpx.stream(
        "POST", f"{world.url}/v1/chat/completions", headers={"Authorization": f"Bearer {world.key}"},
        json={"model": "tiny-reverser", "messages": REVERSE, "stream": True}, timeout=60,
    ) as response:  # fmt: skip
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert not any("usage" in json.loads(e[6:]) for e in events[:-1])


def test_completions_and_a_one_token_limit(client):
    # A prompt the model was trained to answer (its chat turn, written out), greedy: the first token is
    # the answer's, never the end of text. On the bare "reverse: a b c" it was the end of text about 2% of
    # the time sampled, and always, greedy, with the partial model as this machine's CPU builds it (the
    # build's floating point differs between CPU types).
    answer = client.completions.create(
        model="tiny-base",
        prompt="<|im_start|>user\nreverse: a b c<|im_end|>\n<|im_start|>assistant\n",
        max_tokens=1,
        temperature=0,
    )
    assert (
        answer.choices[0].finish_reason == "length" and answer.usage and answer.usage.completion_tokens == 1
    )
    chat = client.chat.completions.create(
        model="tiny-reverser", messages=REVERSE, max_tokens=1, temperature=0
    )
    assert chat.choices[0].finish_reason == "length"


def test_a_wrong_key_gets_401_in_openais_error_shape(world):
    with pytest.raises(openai.AuthenticationError) as error:
        client_for(world.url, "atl-not-a-key").chat.completions.create(model="tiny-base", messages=REVERSE)
    assert error.value.code == "invalid_api_key"
    raw = httpx.get(f"{world.url}/v1/models", timeout=10)  # no key at all
    assert raw.status_code == 401
    assert set(raw.json()["error"]) == {"message", "type", "param", "code"}


def test_another_projects_endpoint_is_invisible(client, world):
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="secret-model", messages=REVERSE)
    assert error.value.code == "model_not_found"
    assert "secret-model" in error.value.message and "does not exist" in error.value.message


def test_a_revoked_key_stops_working(world, django_db_blocker):
    from apps.endpoints.services import api_key_revoke

    with django_db_blocker.unblock():
        api_key, key = api_key_create(project=world.mine, user=world.alice, name="short-lived")
    assert client_for(world.url, key).models.list().data
    with django_db_blocker.unblock():
        api_key_revoke(api_key=api_key, user=world.alice)
    with pytest.raises(openai.AuthenticationError):
        client_for(world.url, key).models.list()


def test_each_key_has_a_rate_limit(world, django_db_blocker):
    with django_db_blocker.unblock():
        _, key = api_key_create(project=world.mine, user=world.alice, name="limited", rate_limit=2)
    limited = client_for(world.url, key)
    limited.models.list()
    limited.models.list()
    with pytest.raises(openai.RateLimitError) as error:
        limited.models.list()
    assert error.value.code == "rate_limit_exceeded" and "2 requests a minute" in error.value.message
    assert client_for(world.url, world.key).models.list().data  # other keys are not affected


def test_impossible_parameters_and_oversized_requests_are_refused_before_any_engine_runs(client, world):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="tiny-base", messages=REVERSE, max_tokens=0)
    assert error.value.param == "max_tokens"
    huge = httpx.post(
        f"{world.url}/v1/chat/completions", headers={"Authorization": f"Bearer {world.key}"},
        json={"model": "tiny-base", "messages": [{"role": "user", "content": "x" * 3_000_000}]}, timeout=30,
    )  # fmt: skip
    assert huge.status_code == 413 and "larger than" in huge.json()["error"]["message"]
