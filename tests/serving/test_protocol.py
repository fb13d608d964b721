"""The request checks both the engine and the gateway apply before any model runs."""

from __future__ import annotations

import pytest

from workers.serving import protocol
from workers.serving.protocol import ApiError


def test_sampling_takes_openais_names_and_defaults():
    s = protocol.sampling({"max_completion_tokens": 5, "temperature": 0, "stop": "\n", "seed": 3})
    assert (s.max_tokens, s.temperature, s.stop, s.seed, s.n) == (5, 0.0, ["\n"], 3, 1)
    assert protocol.sampling({}).max_tokens == protocol.MAX_TOKENS_DEFAULT


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": "high"}, "top_p"),
        ({"n": 9}, "n"),
        ({"stop": [""]}, "stop"),
        ({"max_tokens": True}, "max_tokens"),
    ],
)
def test_impossible_parameters_are_refused_naming_the_parameter(body, param):
    with pytest.raises(ApiError) as error:
        protocol.sampling(body)
    assert error.value.status == 400 and error.value.param == param
    assert error.value.body()["error"]["type"] == "invalid_request_error"


def test_messages_must_have_roles_and_text():
    assert protocol.chat_messages(
        {"messages": [{"role": "developer", "content": [{"type": "text", "text": "be brief"}]}]}
    ) == [{"role": "system", "content": "be brief"}]
    for bad in (
        [],
        [{"role": "wizard", "content": "x"}],
        [{"role": "user", "content": [{"type": "image_url"}]}],
    ):
        with pytest.raises(ApiError):
            protocol.chat_messages({"messages": bad})


def test_a_body_that_is_not_json_or_names_no_model_is_a_400():
    for raw in (b"{", b"[]", b'{"messages": []}'):
        with pytest.raises(ApiError) as error:
            protocol.json_body(raw)
        assert error.value.status == 400
