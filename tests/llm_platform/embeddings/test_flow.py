"""The embeddings flow's pure parts: the forms of `input`, what is refused before anything is reserved,
the token estimate a request reserves, OpenAI's base64 encoding, and the cache's key and entry."""

from __future__ import annotations

import base64
import struct
import uuid

import pytest

from llm_platform.cache.embedding_cache import CachedEmbeddings, embedding_cache_key
from llm_platform.core.errors import BadRequest
from llm_platform.embeddings.flow import as_inputs, check_inputs, encode_base64, reservation


@pytest.mark.parametrize(
    ("wire", "inputs"),
    [
        ("one text", ["one text"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2, 3], [[1, 2, 3]]),
        ([[1, 2], [3]], [[1, 2], [3]]),
    ],
)
def test_every_form_of_input_is_a_list_of_inputs(wire, inputs):
    assert as_inputs(wire) == inputs


@pytest.mark.parametrize(
    ("inputs", "code"),
    [
        ([], "invalid_request"),
        (["fine", ""], "invalid_request"),
        ([[1], []], "invalid_request"),
        (["x"] * 2049, "invalid_request"),
        ([list(range(63))], "context_length_exceeded"),  # 63 ids + [CLS] + [SEP] > 64
    ],
)
def test_refused_inputs_name_the_input_param(inputs, code):
    with pytest.raises(BadRequest) as refused:
        check_inputs(inputs, context_length=64)
    assert (refused.value.code, refused.value.param) == (code, "input")


def test_inputs_within_the_limits_pass():
    check_inputs(["x"] * 2048, context_length=64)
    check_inputs([list(range(62))], context_length=64)


def test_the_reservation_bounds_each_input_by_its_bytes_and_the_context():
    assert reservation(["abc"], 256) == 3 + 2
    assert reservation(["é"], 256) == 2 + 2  # bytes, not characters
    assert reservation([[1, 2, 3, 4]], 256) == 4 + 2
    assert reservation(["x" * 1000, "ab"], 256) == 256 + 4


def test_base64_is_little_endian_float32_as_openai_sends_it():
    vector = [0.5, -1.25, 3.0]
    raw = base64.b64decode(encode_base64(vector))
    assert list(struct.unpack("<3f", raw)) == vector


def test_the_cache_key_names_the_tenant_and_hashes_model_and_inputs():
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    key = embedding_cache_key(tenant_a, "m", ["x"])
    assert key.startswith(f"llmp:cache:{tenant_a}:")
    assert key == embedding_cache_key(tenant_a, "m", ["x"])
    others = {
        embedding_cache_key(tenant_b, "m", ["x"]),
        embedding_cache_key(tenant_a, "n", ["x"]),
        embedding_cache_key(tenant_a, "m", ["x", "x"]),
        embedding_cache_key(tenant_a, "m", [[1]]),
    }
    assert key not in others and len(others) == 4


def test_a_cache_entry_round_trips_as_float32():
    entry = CachedEmbeddings([[0.25, -0.5], [1.0, 2.0]], prompt_tokens=7)
    assert CachedEmbeddings.from_bytes(entry.to_bytes()) == entry
    assert CachedEmbeddings.from_bytes(entry.to_bytes()[:-1]) is None  # cut short: not an entry
    assert CachedEmbeddings.from_bytes(b"") is None
