"""How a turn's sampling parameters are resolved (chat/sampling.py), the cases
tests/llm_platform/chat/test_sampling.py leaves out: a request that sets nothing, a model's defaults for some,
and max_tokens at the very edge of the context. Pure logic."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llm_platform.chat.sampling import SAMPLED, ResolvedMaxTokens, resolve_max_tokens, resolve_sampling
from llm_platform.core.errors import BadRequest

ENGINE_DEFAULTS = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "seed": None,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "repetition_penalty": 1.0,
    "ignore_eos": False,
}


def asked(**values: object) -> SimpleNamespace:
    """A request's parameters: None for each it leaves out."""
    return SimpleNamespace(**(dict.fromkeys(SAMPLED) | values))


def test_max_tokens_and_stop_have_rules_of_their_own():
    assert set(SAMPLED) == set(ENGINE_DEFAULTS)


def test_a_request_that_sets_nothing_on_a_model_without_defaults_gets_the_engines():
    assert resolve_sampling(asked(), {}) == ENGINE_DEFAULTS


def test_the_models_defaults_fill_what_the_request_leaves_out():
    model = {"temperature": 0.2, "top_p": 0.9, "seed": 11, "max_tokens": 512, "stop": ["\n"]}
    resolved = resolve_sampling(asked(top_p=0.5), model)
    assert resolved == ENGINE_DEFAULTS | {"temperature": 0.2, "top_p": 0.5, "seed": 11}


@pytest.mark.parametrize(
    ("name", "falsy"), [("temperature", 0.0), ("top_k", 0), ("seed", 0), ("ignore_eos", False)]
)
def test_a_falsy_value_asked_for_is_a_value_not_unset(name, falsy):
    model = {"temperature": 0.7, "top_k": 40, "seed": 5, "ignore_eos": True}
    assert resolve_sampling(asked(**{name: falsy}), model)[name] == falsy


def test_max_tokens_may_be_exactly_the_context():
    assert resolve_max_tokens(512, None, 256, 512) == ResolvedMaxTokens(512)
    assert resolve_max_tokens(None, 512, 256, 512) == ResolvedMaxTokens(512)
    assert resolve_max_tokens(None, None, 512, 512) == ResolvedMaxTokens(512, is_default=True)
    with pytest.raises(BadRequest, match=r"max_tokens \(513\) exceeds the model's context \(512\)"):
        resolve_max_tokens(513, None, 256, 512)


def test_the_platforms_default_is_never_refused_only_shortened():
    assert resolve_max_tokens(None, None, 100_000, 512) == ResolvedMaxTokens(512, is_default=True)
