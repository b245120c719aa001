"""POST /v1/embeddings, /{tenant}/v1/embeddings and /{tenant}/embeddings with a worker serving the tiny
encoder: OpenAI's shape in both encodings, every form of input, the refusals, and the components a chat
turn goes through (limits, cache, audit, usage ledger), tenant by tenant."""

from __future__ import annotations

import base64
import struct

import pytest
from transformers import AutoTokenizer

from models_registry.engine.embedder import Embedder
from tests.conftest import TINY_ENCODER, TINY_MODEL
from tests.responses import assert_error, assert_status, bearer
from tests.workers import wait_registered

TEXTS = ["the cat sat", "the dog", "a b c d e f g"]
DIMENSIONS = 32  # the tiny encoder's hidden size


@pytest.fixture
def embedding_served(embed_worker, platform, redis_url):  # type: ignore[no-untyped-def]
    wait_registered(redis_url, TINY_ENCODER)
    return platform


@pytest.fixture
def key_a(embedding_served, tenant_a) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return bearer(embedding_served.create_key(tenant_a)["key"])


def embed(platform, headers, path="/v1/embeddings", **body):  # type: ignore[no-untyped-def]
    return platform.client.post(path, headers=headers, json={"model": TINY_ENCODER, **body})


def usage_totals(platform, tenant) -> dict:  # type: ignore[no-untyped-def]
    response = platform.client.get(f"/{tenant.slug}/admin/usage", headers=tenant.admin_headers)
    return assert_status(response).json()["totals"]


def test_vectors_in_openai_shape_as_floats_and_as_base64(embedding_served, key_a, encoder_dir):
    response = embed(embedding_served, key_a, input=TEXTS)
    assert_status(response)
    body = response.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["object"] == "list" and body["model"] == TINY_ENCODER
    assert [(item["object"], item["index"]) for item in body["data"]] == [("embedding", i) for i in range(3)]
    expected, tokens = Embedder.load(encoder_dir).embed(TEXTS)
    for item, vector in zip(body["data"], expected, strict=True):
        assert item["embedding"] == pytest.approx(vector, abs=1e-5)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert response.headers["x-cache"] == "miss" and "x-ratelimit-remaining-requests" in response.headers

    encoded = embed(embedding_served, key_a, input=TEXTS, encoding_format="base64").json()
    for item, floats in zip(encoded["data"], body["data"], strict=True):
        raw = base64.b64decode(item["embedding"])
        assert list(struct.unpack(f"<{DIMENSIONS}f", raw)) == pytest.approx(floats["embedding"], abs=1e-7)


def test_every_form_of_input_embeds_the_same(embedding_served, key_a, encoder_dir):
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in TEXTS]
    as_texts = [item["embedding"] for item in embed(embedding_served, key_a, input=TEXTS).json()["data"]]
    as_ids = [item["embedding"] for item in embed(embedding_served, key_a, input=ids).json()["data"]]
    for from_ids, from_text in zip(as_ids, as_texts, strict=True):
        assert from_ids == pytest.approx(from_text, abs=1e-5)
    one_text = embed(embedding_served, key_a, input=TEXTS[0]).json()["data"]
    one_ids = embed(embedding_served, key_a, input=ids[0]).json()["data"]
    assert len(one_text) == len(one_ids) == 1
    assert one_text[0]["embedding"] == pytest.approx(as_texts[0], abs=1e-5)
    assert one_ids[0]["embedding"] == pytest.approx(as_texts[0], abs=1e-5)


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"input": []}, "invalid_request", "input"),
        ({"input": ""}, "invalid_request", "input"),
        ({"input": ["fine", ""]}, "invalid_request", "input"),
        ({"input": ["x"] * 2049}, "invalid_request", "input"),
        ({"input": [[5] * 63]}, "context_length_exceeded", "input"),
        ({"input": ["a " * 100]}, "context_length_exceeded", "input"),  # counted by the worker
        ({"input": [[10_000]]}, "invalid_request", "input"),  # outside the vocabulary
        ({"input": "x", "dimensions": 16}, "invalid_request", "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, None, "encoding_format"),
        ({"input": "x", "temperature": 0}, None, "temperature"),
    ],
)
def test_bad_requests_answer_400_naming_the_param(embedding_served, key_a, body, code, param):
    error = assert_error(embed(embedding_served, key_a, **body), 400, code)
    assert error["param"] == param


def test_another_size_is_refused_before_anything_is_computed_billed_or_cached(
    embedding_served, key_a, tenant_a
):
    before = usage_totals(embedding_served, tenant_a)
    text = "a text never embedded before in this session"
    assert_error(
        embed(embedding_served, key_a, input=text, dimensions=DIMENSIONS + 1), 400, "invalid_request"
    )
    assert usage_totals(embedding_served, tenant_a) == before
    assert assert_status(embed(embedding_served, key_a, input=text)).headers["x-cache"] == "miss"
    # A cached answer is refused the same way, from its vectors' size.
    refused = embed(embedding_served, key_a, input=text, dimensions=DIMENSIONS + 1)
    assert assert_error(refused, 400, "invalid_request")["param"] == "dimensions"


def test_the_models_own_dimensions_and_a_user_are_accepted(embedding_served, key_a):
    response = embed(embedding_served, key_a, input="x", dimensions=DIMENSIONS, user="someone")
    assert len(assert_status(response).json()["data"][0]["embedding"]) == DIMENSIONS


def test_a_chat_model_does_not_embed_and_an_unknown_model_is_not_found(embedding_served, key_a, tiny_worker):
    refused = embedding_served.client.post(
        "/v1/embeddings", headers=key_a, json={"model": TINY_MODEL, "input": "x"}
    )
    assert assert_error(refused, 400, "invalid_model")["param"] == "model"
    unknown = embedding_served.client.post(
        "/v1/embeddings", headers=key_a, json={"model": "nope", "input": "x"}
    )
    assert assert_error(unknown, 404, "model_not_found")["param"] == "model"


def test_a_repeat_is_a_cache_hit_that_costs_no_tokens_and_is_audited(embedding_served, tenant_a, key_a):
    first = embed(embedding_served, key_a, input=TEXTS)
    again = embed(embedding_served, key_a, input=TEXTS)
    assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
    assert again.json() == first.json()
    tokens = first.json()["usage"]["prompt_tokens"]
    totals = usage_totals(embedding_served, tenant_a)
    assert totals["requests"] == 2 and totals["cached_hits"] == 1 and totals["total_tokens"] == tokens
    rows = [row for row in embedding_served.audit_rows(tenant_a) if row["resource"] == "/v1/embeddings"]
    assert [(row["model"], row["prompt_tokens"], row["cache_hit"]) for row in rows] == [
        (TINY_ENCODER, 0, True),
        (TINY_ENCODER, tokens, False),
    ]


def test_no_cache_asks_for_fresh_vectors(embedding_served, key_a):
    embed(embedding_served, key_a, input="the dog")
    fresh = embedding_served.client.post(
        "/v1/embeddings",
        headers=key_a | {"Cache-Control": "no-cache"},
        json={"model": TINY_ENCODER, "input": "the dog"},
    )
    assert assert_status(fresh).headers["x-cache"] == "miss"


def test_another_tenant_never_gets_a_tenants_cached_vectors(embedding_served, tenant_a, tenant_b, key_a):
    key_b = bearer(embedding_served.create_key(tenant_b)["key"])
    assert embed(embedding_served, key_a, input=TEXTS).headers["x-cache"] == "miss"
    of_b = embed(embedding_served, key_b, input=TEXTS)
    assert of_b.headers["x-cache"] == "miss"  # the same inputs, but another tenant's entry
    assert usage_totals(embedding_served, tenant_b)["total_tokens"] == of_b.json()["usage"]["prompt_tokens"]
    # Nor through the tenant paths: tenant B's key cannot embed as tenant A.
    assert_error(embed(embedding_served, key_b, path=f"/{tenant_a.slug}/embeddings", input="x"), 404)


def test_a_spent_tokens_per_minute_refuses_with_429(embedding_served, tenant_a, key_a):
    embedding_served.set_limits(tenant_a, tokens_per_minute=60)
    statuses = []
    for _ in range(8):  # each reserves 13 bytes + 2, settles to its 9 real tokens
        response = embedding_served.client.post(
            "/v1/embeddings",
            headers=key_a | {"Cache-Control": "no-cache"},
            json={"model": TINY_ENCODER, "input": "a b c d e f g"},
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert "retry-after" in response.headers
            break
        assert response.headers["x-ratelimit-remaining-tokens"]
    assert statuses[0] == 200 and statuses[-1] == 429


def test_the_tenant_paths(embedding_served, tenant_a, key_a):
    door = embed(embedding_served, key_a, path=f"/{tenant_a.slug}/embeddings", input="the cat")
    assert assert_status(door).json()["model"] == TINY_ENCODER
    # A platform admin acts for a tenant through /{tenant}/v1/embeddings; /v1/ names none.
    admin = embedding_served.admin_headers
    as_admin = embed(embedding_served, admin, path=f"/{tenant_a.slug}/v1/embeddings", input="the cat")
    assert assert_status(as_admin).json()["data"] == door.json()["data"]
    assert_error(embed(embedding_served, admin, input="the cat"), 400, "tenant_required")
