"""Sampling parameters decided once: max_tokens' resolution order and cap, the worker's use of it, and
cache keys that stay what they were. Pure logic: no process, no database."""

from __future__ import annotations

import uuid

import pytest

from llm_platform.cache.response_cache import cache_key
from llm_platform.chat.sampling import MaxTokens, resolve_max_tokens
from llm_platform.errors import BadRequest
from models_registry.worker.protocol import ChatMessage, GenerateParams, GenerateRequest

TENANT = uuid.UUID("00000000-0000-0000-0000-000000000001")


def test_the_request_wins_over_the_models_default_and_the_platforms():
    assert resolve_max_tokens(7, 50, 1024, 512) == MaxTokens(7)


def test_the_models_default_applies_when_the_request_sets_none():
    assert resolve_max_tokens(None, 50, 1024, 512) == MaxTokens(50)


def test_the_platforms_default_applies_last_capped_by_the_context():
    assert resolve_max_tokens(None, None, 100, 512) == MaxTokens(100, is_default=True)
    assert resolve_max_tokens(None, None, 1024, 512) == MaxTokens(512, is_default=True)


def test_an_upstream_applies_its_own_default():
    assert resolve_max_tokens(None, None, None, 512) == MaxTokens(None)
    assert resolve_max_tokens(None, 50, None, 512) == MaxTokens(50)  # the model's default is ours


@pytest.mark.parametrize(("asked", "model_default"), [(513, None), (None, 513)])
def test_an_asked_max_tokens_beyond_the_context_is_refused(asked, model_default):
    assert resolve_max_tokens(512, model_default, 1024, 512) == MaxTokens(512)  # the edge fits
    with pytest.raises(BadRequest) as refused:
        resolve_max_tokens(asked, model_default, 1024, 512)
    error = refused.value
    assert (error.message, error.code, error.param) == (
        "max_tokens (513) exceeds the model's context (512)",
        "context_length_exceeded",
        "max_tokens",
    )


def test_the_worker_shortens_only_the_default_to_the_room_the_prompt_leaves():
    assert GenerateParams(max_tokens=100, max_tokens_is_default=True).max_tokens_within(40) == 40
    assert GenerateParams(max_tokens=100, max_tokens_is_default=True).max_tokens_within(400) == 100
    assert GenerateParams(max_tokens=100, max_tokens_is_default=True).max_tokens_within(0) == 1
    assert GenerateParams(max_tokens=100).max_tokens_within(40) == 100  # asked: the engine refuses it
    assert GenerateParams().max_tokens_within(40) == 40  # none from a caller other than the API


def _request(params: GenerateParams) -> GenerateRequest:
    messages = [ChatMessage(role="user", content="Héllo")]
    return GenerateRequest(request_id="r", tenant="t", model="m", messages=messages, params=params)


def test_cache_keys_are_the_ones_existing_entries_were_stored_under():
    # Digests computed before max_tokens was resolved by the API: a key change empties every cache.
    prefix = f"llmp:cache:{TENANT}:"
    defaulted = GenerateParams(max_tokens=1024, max_tokens_is_default=True, temperature=0)
    assert cache_key(TENANT, _request(defaulted)) == (
        prefix + "e4d48ce9c40501b15f2b035b87a460245478a28ae3a134f492a1353e6125e2ce"
    )
    every = GenerateParams(
        max_tokens=16,
        temperature=0,
        top_p=0.5,
        top_k=3,
        seed=7,
        stop=["x"],
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        repetition_penalty=1.2,
        ignore_eos=True,
    )
    assert cache_key(TENANT, _request(every)) == (
        prefix + "bd4c44e1abbbc328dfd4b2935421eb6c4ad4897415a228522c803be8aaad1c56"
    )
    asked = GenerateParams(max_tokens=1024, temperature=0)
    assert cache_key(TENANT, _request(asked)) != cache_key(TENANT, _request(defaulted))
