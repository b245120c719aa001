"""What the response cache (cache/response_cache.py) keys an answer on: the same request gives the same
key, anything that changes the answer gives another, the tenant is in every key (tenant A's entry is never
tenant B's), and what does not change the answer leaves the key alone. Also which answers are cacheable
at all. Pure logic: no Redis, no worker."""

from __future__ import annotations

import uuid

import pytest

from llm_platform.cache.response_cache import CachedAnswer, cache_key, cacheable
from models_registry.worker.protocol import ChatMessage, GenerateParams, GenerateRequest
from tenants.policy import CachePolicy

TENANT_A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
TENANT_B = uuid.UUID("00000000-0000-0000-0000-00000000000b")
MESSAGES = [("system", "Be brief."), ("user", "What is the capital of France?")]


def request(messages=MESSAGES, model="tiny", request_id="r1", tenant="alpha", **params) -> GenerateRequest:  # type: ignore[no-untyped-def]
    return GenerateRequest(
        request_id=request_id,
        tenant=tenant,
        model=model,
        messages=[ChatMessage(role=role, content=content) for role, content in messages],
        params=GenerateParams(**({"max_tokens": 8, "temperature": 0} | params)),
    )


def test_the_same_request_gets_the_same_key():
    assert cache_key(TENANT_A, request()) == cache_key(TENANT_A, request())


def test_the_tenant_is_in_the_key_so_entries_never_cross_tenants():
    key_a, key_b = cache_key(TENANT_A, request()), cache_key(TENANT_B, request())
    assert key_a != key_b
    assert key_a.startswith(f"llmp:cache:{TENANT_A}:") and key_b.startswith(f"llmp:cache:{TENANT_B}:")
    assert key_a.removeprefix(f"llmp:cache:{TENANT_A}:") == key_b.removeprefix(f"llmp:cache:{TENANT_B}:")


def test_the_tenant_id_decides_not_the_slug_the_request_carries():
    # The key takes the tenant's id; the slug in the worker request is for the engine's fair scheduling.
    assert cache_key(TENANT_A, request(tenant="alpha")) == cache_key(TENANT_A, request(tenant="renamed"))


@pytest.mark.parametrize(
    "changed",
    [
        {"model": "other-model"},
        {"messages": [("system", "Be brief."), ("user", "What is the capital of Italy?")]},
        {"messages": [("user", "Be brief."), ("user", "What is the capital of France?")]},  # a role
        {"messages": list(reversed(MESSAGES))},  # the order
        {"messages": MESSAGES[1:]},  # one fewer
        {"messages": [("system", "Be brief.What is the capital of France?")]},  # joined into one
        {"messages": [*MESSAGES, ("assistant", "")]},
        {"max_tokens": 9},
        {"max_tokens": None},
        {"temperature": 0.5},
        {"top_p": 0.9},
        {"top_k": 5},
        {"seed": 7},
        {"stop": ["\n"]},
        {"presence_penalty": 0.1},
        {"frequency_penalty": 0.1},
        {"repetition_penalty": 1.1},
        {"ignore_eos": True},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_anything_that_changes_the_answer_changes_the_key(changed):
    assert cache_key(TENANT_A, request(**changed)) != cache_key(TENANT_A, request())


def test_the_request_id_is_no_part_of_the_key():
    assert cache_key(TENANT_A, request(request_id="r1")) == cache_key(TENANT_A, request(request_id="r2"))


def test_the_platforms_default_max_tokens_is_no_part_of_the_key():
    # A changed LLMP_DEFAULT_MAX_TOKENS keeps every entry: only an asked max_tokens is keyed on.
    defaulted = [request(max_tokens=n, max_tokens_is_default=True) for n in (256, 1024)]
    assert cache_key(TENANT_A, defaulted[0]) == cache_key(TENANT_A, defaulted[1])
    asked = request(max_tokens=256)
    assert cache_key(TENANT_A, asked) != cache_key(TENANT_A, defaulted[0])
    assert cache_key(TENANT_A, defaulted[0]) == cache_key(TENANT_A, request(max_tokens=None))


def test_a_key_is_the_tenant_and_a_sha256_of_the_rest():
    key = cache_key(TENANT_A, request())
    prefix, digest = key.rsplit(":", 1)
    assert prefix == f"llmp:cache:{TENANT_A}"
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")


@pytest.mark.parametrize(
    ("params", "policy", "cached"),
    [
        ({"temperature": 0}, CachePolicy(), True),  # greedy: a repeat gives the same answer
        ({"temperature": 0.7, "seed": 3}, CachePolicy(), True),  # seeded: likewise
        ({"temperature": 0.7, "seed": 0}, CachePolicy(), True),  # 0 is a seed, not "unseeded"
        ({"temperature": 0.7}, CachePolicy(), False),  # drawn: a repeat would differ
        ({"temperature": 0.7}, CachePolicy(sampled=True), True),  # unless the tenant opts in
        ({"temperature": 0}, CachePolicy(enabled=False), False),
        ({"temperature": 0.7}, CachePolicy(enabled=False, sampled=True), False),
    ],
)
def test_which_answers_are_cached(params, policy, cached):
    assert cacheable(request(**params), policy) is cached


def test_an_entry_round_trips_with_its_chunks_intact():
    answer = CachedAnswer(("Pa", "ris", " 🎉\u00e9"), "length", 12, 3)
    raw = answer.to_bytes()
    assert CachedAnswer.from_bytes(raw) == answer
    assert "🎉".encode() in raw  # stored as UTF-8, not \\u escapes: entries are sized in bytes
