"""Sampling parameters as the engine takes them (engine/params.py): the defaults a request leaves out,
how a range's bounds read, stop sequences, and the refusals that name their parameter. The edges of each
numeric range, checked against the wire schemas too, are in tests/llm_platform/chat/test_sampling.py.
Pure logic: no model."""

from __future__ import annotations

import dataclasses

import pytest

from models_registry.engine.params import (
    MAX_STOP_LENGTH,
    MAX_STOP_STRINGS,
    RANGES,
    ContextLengthExceeded,
    InvalidParameter,
    Range,
    SamplingParams,
)
from models_registry.worker.protocol import SAMPLING_DEFAULTS, GenerateParams


def test_the_defaults_of_a_request_that_sets_nothing():
    assert dataclasses.asdict(SamplingParams()) == {
        "max_tokens": 256,  # the engine's own callers'; the API resolves LLMP_DEFAULT_MAX_TOKENS instead
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,  # off
        "seed": None,  # unseeded
        "stop": (),
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "repetition_penalty": 1.0,  # off
        "ignore_eos": False,
    }
    assert not SamplingParams().greedy and not SamplingParams().penalized


def test_the_wire_shape_takes_its_defaults_from_the_engine():
    wire = GenerateParams().model_dump()
    engine = dataclasses.asdict(SAMPLING_DEFAULTS)
    for name in engine.keys() - {"max_tokens", "stop"}:
        assert wire[name] == engine[name], name
    assert wire["stop"] == [] and wire["max_tokens"] is None  # None: as many as fit (see max_tokens_within)


@pytest.mark.parametrize(
    ("bounds", "admitted", "refused"),
    [
        (Range("", ge=0), [0, 0.1, 10**12], [-0.001]),
        (Range("", gt=0), [1e-12, 5], [0, -1]),
        (Range("", le=2), [2, -(10**12)], [2.0001]),
        (Range("", lt=10), [9.999], [10, 11]),
        (Range("", ge=-2, le=2), [-2, 0, 2], [-2.01, 2.01]),
        (Range(""), [-(10**18), 0, 10**18], []),  # no bound: anything
    ],
)
def test_a_range_reads_ge_and_le_as_inclusive_gt_and_lt_as_exclusive(bounds, admitted, refused):
    assert [bounds.admits(value) for value in admitted] == [True] * len(admitted)
    assert [bounds.admits(value) for value in refused] == [False] * len(refused)


def test_every_numeric_parameter_has_its_range_and_nothing_else_does():
    numeric = {"max_tokens", "temperature", "top_p", "top_k", "seed"}
    penalties = {"presence_penalty", "frequency_penalty", "repetition_penalty"}
    assert set(RANGES) == numeric | penalties
    assert set(RANGES) <= {f.name for f in dataclasses.fields(SamplingParams)}


def test_an_unset_seed_is_not_range_checked():
    assert SamplingParams(seed=None).seed is None


def test_the_first_parameter_out_of_range_is_the_one_named():
    with pytest.raises(InvalidParameter) as refused:
        SamplingParams(max_tokens=0, temperature=9)
    assert (refused.value.param, str(refused.value)) == ("max_tokens", "max_tokens must be at least 1")


def test_up_to_four_stop_sequences_of_one_to_sixty_four_characters():
    assert (MAX_STOP_STRINGS, MAX_STOP_LENGTH) == (4, 64)
    edge = ("a", "bb", "c" * 64, "\n")
    assert SamplingParams(stop=edge).stop == edge
    refusals = {
        ("a", "b", "c", "d", "e"): "at most 4 stop sequences are supported",
        ("",): "stop sequences must be 1 to 64 characters",
        ("x" * 65,): "stop sequences must be 1 to 64 characters",
    }
    for stop, message in refusals.items():
        with pytest.raises(InvalidParameter) as refused:
            SamplingParams(stop=stop)
        assert (refused.value.param, refused.value.message) == ("stop", message)


@pytest.mark.parametrize(
    ("params", "greedy", "penalized"),
    [
        ({"temperature": 0}, True, False),
        ({"temperature": 0.01}, False, False),
        ({"presence_penalty": 0.5}, False, True),
        ({"frequency_penalty": -0.5}, False, True),
        ({"repetition_penalty": 1.1}, False, True),
        ({"repetition_penalty": 1.0, "top_k": 1}, False, False),  # greedy is the temperature's alone
    ],
)
def test_greedy_means_temperature_zero_and_any_penalty_is_applied(params, greedy, penalized):
    assert (SamplingParams(**params).greedy, SamplingParams(**params).penalized) == (greedy, penalized)


def test_parameters_cannot_change_once_checked():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SamplingParams().temperature = 5  # type: ignore[misc]


def test_a_context_overflow_says_what_was_asked_in_openais_words():
    overflow = ContextLengthExceeded(prompt_tokens=30, max_tokens=100, context_length=120)
    assert (overflow.prompt_tokens, overflow.max_tokens, overflow.context_length) == (30, 100, 120)
    assert str(overflow) == (
        "This model's maximum context length is 120 tokens. However, you requested 130 tokens (30 in "
        "the messages, 100 in the completion). Please reduce the length of the messages or completion."
    )
