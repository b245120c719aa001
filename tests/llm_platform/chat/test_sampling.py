"""Sampling parameters decided once: max_tokens' resolution order and cap, the worker's use of it, and
cache keys that stay what they were. Pure logic: no process, no database."""

from __future__ import annotations

import uuid

import pytest
from pydantic import TypeAdapter, ValidationError

from llm_platform.cache.response_cache import cache_key
from llm_platform.chat.openai_protocol import ChatCompletionRequest
from llm_platform.chat.sampling import AskedSampling, ResolvedMaxTokens, resolve_max_tokens, resolve_sampling
from llm_platform.core.errors import BadRequest
from models_registry.engine.params import RANGES, InvalidParameter, SamplingParams
from models_registry.worker.protocol import (
    ChatMessage,
    FrequencyPenalty,
    GenerateParams,
    GenerateRequest,
    MaxTokens,
    PresencePenalty,
    RepetitionPenalty,
    Temperature,
    TopK,
    TopP,
)

TENANT = uuid.UUID("00000000-0000-0000-0000-000000000001")


def test_the_request_wins_over_the_models_default_and_the_platforms():
    assert resolve_max_tokens(7, 50, 1024, 512) == ResolvedMaxTokens(7)


def test_the_models_default_applies_when_the_request_sets_none():
    assert resolve_max_tokens(None, 50, 1024, 512) == ResolvedMaxTokens(50)


def test_the_platforms_default_applies_last_capped_by_the_context():
    assert resolve_max_tokens(None, None, 100, 512) == ResolvedMaxTokens(100, is_default=True)
    assert resolve_max_tokens(None, None, 1024, 512) == ResolvedMaxTokens(512, is_default=True)


def test_an_upstream_applies_its_own_default():
    assert resolve_max_tokens(None, None, None, 512) == ResolvedMaxTokens(None)
    assert resolve_max_tokens(None, 50, None, 512) == ResolvedMaxTokens(50)  # the model's default is ours


@pytest.mark.parametrize(("asked", "model_default"), [(513, None), (None, 513)])
def test_an_asked_max_tokens_beyond_the_context_is_refused(asked, model_default):
    assert resolve_max_tokens(512, model_default, 1024, 512) == ResolvedMaxTokens(512)  # the edge fits
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


# --- ranges: the engine's check and the wire schemas' agree at every edge ---------------------------

EDGES = [  # name, admitted values at and inside the edges, refused values just past them
    ("max_tokens", [1, 10**9], [0, -1]),
    ("temperature", [0, 2, 0.7], [-0.001, 2.001]),
    ("top_p", [1e-9, 1], [0, -0.5, 1.001]),
    ("top_k", [0, 50], [-1]),
    ("presence_penalty", [-2, 2, 0], [-2.001, 2.001]),
    ("frequency_penalty", [-2, 2, 0], [-2.001, 2.001]),
    ("repetition_penalty", [1e-9, 10, 1], [0, 10.001]),
]
WIRE_TYPES = {
    "max_tokens": MaxTokens,
    "temperature": Temperature,
    "top_p": TopP,
    "top_k": TopK,
    "presence_penalty": PresencePenalty,
    "frequency_penalty": FrequencyPenalty,
    "repetition_penalty": RepetitionPenalty,
}


@pytest.mark.parametrize(("name", "admitted", "refused"), EDGES)
def test_the_engine_and_the_wire_admit_and_refuse_the_same_values(name, admitted, refused):
    wire = TypeAdapter(WIRE_TYPES[name])
    for value in admitted:
        assert getattr(SamplingParams(**{name: value}), name) == value
        assert wire.validate_python(value) == value
    for value in refused:
        with pytest.raises(InvalidParameter) as engine_refusal:
            SamplingParams(**{name: value})
        assert (engine_refusal.value.param, engine_refusal.value.message) == (name, RANGES[name].message)
        with pytest.raises(ValidationError):
            wire.validate_python(value)


def test_the_seed_is_a_non_negative_64_bit_integer():
    assert SamplingParams(seed=0).seed == 0 and SamplingParams(seed=2**63 - 1).seed == 2**63 - 1
    for seed in (-1, 2**63):
        with pytest.raises(InvalidParameter, match="seed must be a non-negative 64-bit integer"):
            SamplingParams(seed=seed)


def test_the_refusals_name_their_range():
    assert {name: bounds.message for name, bounds in RANGES.items()} == {
        "max_tokens": "max_tokens must be at least 1",
        "temperature": "temperature must be between 0 and 2",
        "top_p": "top_p must be greater than 0 and at most 1",
        "top_k": "top_k must be 0 (off) or positive",
        "seed": "seed must be a non-negative 64-bit integer",
        "presence_penalty": "presence_penalty must be between -2 and 2",
        "frequency_penalty": "frequency_penalty must be between -2 and 2",
        "repetition_penalty": "repetition_penalty must be greater than 0 and at most 10",
    }


def test_the_openapi_document_shows_the_ranges_as_before():
    properties = ChatCompletionRequest.model_json_schema()["properties"]
    assert properties["temperature"]["anyOf"][0] == {"type": "number", "minimum": 0, "maximum": 2}
    assert properties["top_p"]["anyOf"][0] == {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
    assert properties["presence_penalty"] == {
        "type": "number",
        "minimum": -2,
        "maximum": 2,
        "default": 0.0,
        "title": "Presence Penalty",
    }


# --- resolution order of the other parameters ------------------------------------------------------


def test_each_parameter_is_the_requests_else_the_models_else_the_engines():
    asked = AskedSampling(temperature=0.0, top_p=None, seed=None)
    resolved = resolve_sampling(asked, {"temperature": 0.5, "top_p": 0.9})
    assert resolved == {
        "temperature": 0.0,  # asked: 0 is a value, not "unset"
        "top_p": 0.9,  # the model's
        "top_k": 0,  # the engine's, from here on
        "seed": None,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "repetition_penalty": 1.0,
        "ignore_eos": False,
    }
