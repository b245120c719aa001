"""The response cache over the real path (Redis, a worker): hits, misses, isolation, replay, bypass."""

from __future__ import annotations

import asyncio

from llm_platform.cache.response_cache import CachedAnswer, MemoryResponseCache
from tests.conftest import QUESTION, TINY_MODEL
from tests.responses import assert_error, assert_status, bearer, sse_chunks, sse_events


def _chat(platform, key: str, headers: dict[str, str] | None = None, **body):  # type: ignore[no-untyped-def]
    payload = {"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 8, "temperature": 0, **body}
    return platform.client.post(
        "/v1/chat/completions", json=payload, headers={**bearer(key), **(headers or {})}
    )


def _usage(platform, tenant) -> dict:  # type: ignore[no-untyped-def]
    return platform.client.get(f"/{tenant.slug}/admin/usage", headers=tenant.admin_headers).json()["totals"]


def test_a_repeat_is_served_from_the_cache_and_costs_no_tokens(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    first, second = _chat(served, key), _chat(served, key)
    assert first.headers["x-cache"] == "miss" and second.headers["x-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["usage"] == first.json()["usage"]
    totals = _usage(served, tenant_a)
    assert totals["requests"] == 2 and totals["cached_hits"] == 1
    assert totals["total_tokens"] == first.json()["usage"]["total_tokens"]  # the hit used none


def test_changed_parameters_or_messages_miss(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    assert _chat(served, key).headers["x-cache"] == "miss"
    assert _chat(served, key, max_tokens=9).headers["x-cache"] == "miss"
    assert _chat(served, key, stop=["x"]).headers["x-cache"] == "miss"
    other = [{"role": "user", "content": "What is the capital of Italy?"}]
    assert _chat(served, key, messages=other).headers["x-cache"] == "miss"
    assert _chat(served, key).headers["x-cache"] == "hit"


def test_entries_never_cross_tenants(served, tenant_a, tenant_b):
    assert _chat(served, served.create_key(tenant_a)["key"]).headers["x-cache"] == "miss"
    assert _chat(served, served.create_key(tenant_b)["key"]).headers["x-cache"] == "miss"


def test_a_streamed_hit_replays_the_original_stream(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    options = {"stream": True, "stream_options": {"include_usage": True}}
    original, replayed = _chat(served, key, **options), _chat(served, key, **options)
    assert original.headers["x-cache"] == "miss" and replayed.headers["x-cache"] == "hit"

    def contents(response) -> tuple[list, dict]:  # type: ignore[no-untyped-def]
        assert sse_events(response)[-1] == "[DONE]"
        chunks = sse_chunks(response)
        return [c["choices"][0]["delta"] for c in chunks if c["choices"]], chunks[-1]["usage"]

    assert contents(replayed) == contents(original)  # the same chunks, the same usage
    whole = assert_status(_chat(served, key))  # and the JSON form of the same request is a hit too
    assert whole.headers["x-cache"] == "hit"
    assert whole.json()["choices"][0]["message"]["content"] == "".join(
        delta.get("content") or "" for delta in contents(original)[0]
    )


def test_no_cache_header_bypasses_the_cache(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    assert_status(_chat(served, key))
    assert _chat(served, key, headers={"Cache-Control": "no-cache"}).headers["x-cache"] == "miss"
    assert _chat(served, key).headers["x-cache"] == "hit"


def test_sampled_answers_are_cached_only_with_a_seed_or_the_tenants_consent(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    for _ in range(2):
        assert _chat(served, key, temperature=1.0).headers["x-cache"] == "miss"
    assert_status(_chat(served, key, temperature=1.0, seed=7))
    assert _chat(served, key, temperature=1.0, seed=7).headers["x-cache"] == "hit"
    response = served.client.patch(
        f"/{tenant_a.slug}/admin/settings", json={"cache_sampled": True}, headers=tenant_a.admin_headers
    )
    assert response.status_code == 200 and response.json()["cache_sampled"] is True
    assert_status(_chat(served, key, temperature=1.0))
    assert _chat(served, key, temperature=1.0).headers["x-cache"] == "hit"


def test_a_tenant_can_turn_caching_off(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    served.update_settings(tenant_a, cache_enabled=False)
    assert [_chat(served, key).headers["x-cache"] for _ in range(2)] == ["miss", "miss"]


def test_hits_count_as_requests_but_spend_no_quota(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    used = _chat(served, key).json()["usage"]["total_tokens"]
    served.set_limits(tenant_a, requests_per_minute=2, monthly_token_quota=used)  # the quota is spent
    assert_error(_chat(served, key, max_tokens=5), 429, "insufficient_quota")  # a new question: refused
    assert _chat(served, key).headers["x-cache"] == "hit"  # a cached one: served
    assert_error(_chat(served, key), 429, "rate_limit_exceeded")  # the first and the hit: 2 this minute


def test_settings_are_the_tenants_own(served, tenant_a, tenant_b):
    defaults = served.client.get(f"/{tenant_a.slug}/admin/settings", headers=tenant_a.admin_headers).json()
    assert defaults["cache_enabled"] is True and defaults["cache_ttl_s"] == 3600
    assert defaults["audit_store_text"] is False
    assert_error(served.client.get(f"/{tenant_b.slug}/admin/settings", headers=tenant_a.admin_headers), 404)
    response = served.client.patch(
        f"/{tenant_a.slug}/admin/settings", json={"cache_ttl_s": 0}, headers=tenant_a.admin_headers
    )
    assert assert_error(response, 422)["param"] == "cache_ttl_s"


def test_the_in_process_cache_refuses_oversized_entries_and_expires_others():
    async def scenario() -> None:
        cache = MemoryResponseCache(max_bytes=10_000)
        answer = CachedAnswer(("a" * 2000,), "stop", 1, 1)
        assert not await cache.put("big", answer, ttl_s=60, max_bytes=1024)
        assert await cache.get("big") is None
        assert await cache.put("ok", answer, ttl_s=60, max_bytes=4096)
        assert await cache.get("ok") == answer
        for index in range(10):  # least recently used entries leave once the bytes run out
            await cache.put(f"other-{index}", answer, ttl_s=60, max_bytes=4096)
        assert await cache.get("ok") is None

    asyncio.run(scenario())
