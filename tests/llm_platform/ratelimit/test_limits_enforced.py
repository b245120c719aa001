"""Rate limits and quotas on the model endpoints, over the real path (API, Redis, Postgres, a worker)."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis

from tests.conftest import QUESTION, TINY_MODEL, register_model
from tests.responses import assert_error, assert_status, bearer, sse_chunks, sse_events
from tests.tiny_model import build_tiny_model
from tests.workers import WorkerProcess, wait_registered, worker_env

LONG = 4000
LONG_STREAM = {
    "model": "tiny-long",
    "messages": QUESTION,
    "max_tokens": LONG,
    "ignore_eos": True,
    "stream": True,
}


def _chat(platform, key: str, **body):  # type: ignore[no-untyped-def]
    payload = {"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 4, "temperature": 0, **body}
    # Fresh answers: these tests count the tokens of generations (cache hits have their own tests).
    headers = {**bearer(key), "Cache-Control": "no-cache"}
    return platform.client.post("/v1/chat/completions", json=payload, headers=headers)


def _stream_usage(response) -> dict:  # type: ignore[no-untyped-def]
    assert sse_events(response)[-1] == "[DONE]"
    return sse_chunks(response)[-1]["usage"]


def _total(response) -> int:  # type: ignore[no-untyped-def]
    return response.json()["usage"]["total_tokens"]


def _remaining_tokens(response) -> int:  # type: ignore[no-untyped-def]
    return int(response.headers["x-ratelimit-remaining-tokens"])


def test_requests_per_minute_headers_and_429(served, tenant_a):
    served.set_limits(tenant_a, requests_per_minute=2, tokens_per_minute=100_000)
    key = served.create_key(tenant_a)["key"]
    first = _chat(served, key)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"
    assert 0 < _remaining_tokens(first) < 100_000
    assert first.headers["x-ratelimit-reset-tokens"].endswith("s")
    streamed = _chat(served, key, stream=True)
    assert streamed.status_code == 200 and streamed.headers["x-ratelimit-remaining-requests"] == "0"

    refused = _chat(served, key)
    error = assert_error(refused, 429, "rate_limit_exceeded")
    assert error["type"] == "rate_limit_error" and "2 requests per minute" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-limit-tokens"] == "100000"

    served.set_limits(tenant_a, requests_per_minute=3)  # an admin's change holds from the next request
    assert _chat(served, key).status_code == 200
    assert_error(_chat(served, key), 429, "rate_limit_exceeded")
    usage = served.client.get(f"/{tenant_a.slug}/admin/usage", headers=tenant_a.admin_headers).json()
    assert usage["totals"]["requests"] == 3  # refused requests cost nothing


def test_tokens_are_reserved_then_settled_to_real_usage(served, tenant_a):
    limit = 10_000
    served.set_limits(tenant_a, tokens_per_minute=limit)
    key = served.create_key(tenant_a)["key"]
    first = _chat(served, key, max_tokens=16)
    assert first.status_code == 200, first.text
    reserved = limit - _remaining_tokens(first)  # nothing else in the window: this is its reservation
    assert reserved >= first.json()["usage"]["prompt_tokens"] + 16  # its whole budget, while it ran
    # The same request again: the first now counts for what it used, not for what it reserved.
    second = assert_status(
        _chat(served, key, max_tokens=16, stream=True, stream_options={"include_usage": True})
    )
    assert _remaining_tokens(second) == limit - _total(first) - reserved
    third = assert_status(_chat(served, key, max_tokens=16))
    streamed_total = _stream_usage(second)["total_tokens"]
    assert _remaining_tokens(third) == limit - _total(first) - streamed_total - reserved  # streams alike


def test_a_request_larger_than_the_token_limit_is_told_to_ask_for_less(served, tenant_a):
    served.set_limits(tenant_a, tokens_per_minute=50)
    key = served.create_key(tenant_a)["key"]
    error = assert_error(_chat(served, key, max_tokens=200), 429, "rate_limit_exceeded")
    assert "lower max_tokens" in error["message"]


def test_key_limits_apply_on_top_of_the_tenants(served, tenant_a):
    served.set_limits(tenant_a, requests_per_minute=4)
    tight = served.create_key(tenant_a, requests_per_minute=1)["key"]
    loose = served.create_key(tenant_a)["key"]
    admitted = _chat(served, tight)
    assert admitted.status_code == 200
    assert admitted.headers["x-ratelimit-limit-requests"] == "1"  # the tightest scope is reported
    assert "this API key" in assert_error(_chat(served, tight), 429, "rate_limit_exceeded")["message"]
    remaining = [_chat(served, loose).headers["x-ratelimit-remaining-requests"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]  # the tenant's 4 include the tight key's request
    assert "this tenant" in assert_error(_chat(served, loose), 429, "rate_limit_exceeded")["message"]


def test_a_keys_daily_quota(served, tenant_a):
    first = served.create_key(tenant_a)
    assert_status(
        served.client.patch(
            f"/{tenant_a.slug}/admin/keys/{first['id']}/limits",
            json={"daily_token_quota": 300},
            headers=tenant_a.admin_headers,
        )
    )
    statuses = [_chat(served, first["key"]).status_code for _ in range(12)]
    assert statuses[0] == 200 and statuses[-1] == 429
    refused = _chat(served, first["key"])
    error = assert_error(refused, 429, "insufficient_quota")
    assert error["type"] == "insufficient_quota" and "daily" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    assert _chat(served, served.create_key(tenant_a)["key"]).status_code == 200  # the tenant's other keys


def test_monthly_quota_is_spent_survives_flushdb_and_renews(served, tenant_a, redis_url):
    meter = served.client.app.state.platform.meter
    today = datetime.now(UTC)
    last_day = calendar.monthrange(today.year, today.month)[1]
    month_end = datetime(today.year, today.month, last_day, 23, 59, 30, tzinfo=UTC)
    meter.clock = lambda: month_end
    quota = 400
    served.set_limits(tenant_a, monthly_token_quota=quota)
    key = served.create_key(tenant_a)["key"]
    answers = []
    for _ in range(20):
        response = _chat(served, key)
        if response.status_code != 200:
            break
        answers.append(_total(response))
    assert answers and sum(answers) <= quota  # reservations keep the quota from being overrun
    error = assert_error(response, 429, "insufficient_quota")
    assert "monthly" in error["message"] and "renews" in error["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 30  # the month ends in 30 s by this clock

    Redis.from_url(redis_url).flushdb()  # Redis loses everything; the ledger in Postgres does not
    wait_registered(redis_url, TINY_MODEL)
    assert_error(_chat(served, key), 429, "insufficient_quota")

    meter.clock = lambda: month_end + timedelta(seconds=40)  # a new month
    assert _chat(served, key).status_code == 200
    meter.clock = lambda: month_end
    served.set_limits(tenant_a, monthly_token_quota=quota * 10)  # or an admin raises the quota
    assert _chat(served, key).status_code == 200


def test_concurrent_requests(served, tenant_a, long_worker, redis_url):
    wait_registered(redis_url, "tiny-long")
    served.set_limits(tenant_a, concurrent_requests=1)
    key = served.create_key(tenant_a)["key"]
    body = LONG_STREAM
    with served.client.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key)) as held:
        assert held.status_code == 200
        lines = held.iter_lines()  # kept: a dropped iterator would close the stream
        next(lines)
        error = assert_error(_chat(served, key), 429, "rate_limit_exceeded")
        assert "in flight" in error["message"]
    deadline = time.monotonic() + 10
    while (response := _chat(served, key)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert response.status_code == 200  # the slot came back when the stream ended


def test_a_cancelled_stream_is_billed_for_what_it_produced(served, tenant_a, long_worker, redis_url):
    wait_registered(redis_url, "tiny-long")
    limit = 100_000
    served.set_limits(tenant_a, tokens_per_minute=limit)
    key = served.create_key(tenant_a)["key"]
    probe = assert_status(_chat(served, key))
    before = _remaining_tokens(probe)  # limit - probe's reservation

    body = LONG_STREAM
    with served.client.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key)) as stream:
        lines = stream.iter_lines()
        received = [line for line in (next(lines) for _ in range(12)) if line.startswith("data: ")]
    billed = _wait_for_usage(served, tenant_a, "tiny-long")
    assert billed["requests"] == 1
    assert len(received) - 1 <= billed["completion_tokens"] < LONG  # the role chunk carries no token

    # The limiter holds the same count: the same probe again shows probe + stream, not their reservations.
    again = assert_status(_chat(served, key))
    stream_tokens = before - _remaining_tokens(again) - _total(probe)
    assert stream_tokens == billed["prompt_tokens"] + billed["completion_tokens"]


@pytest.fixture
def doomed_worker(database_url, redis_url, db_engine, tmp_path):  # type: ignore[no-untyped-def]
    model_dir = build_tiny_model(tmp_path / "model", max_positions=16_384)
    register_model(db_engine, "tiny-doomed", str(model_dir), 16_384)
    env = worker_env(database_url, redis_url, tmp_path, LLMP_ENGINE_MAX_SEQ_LEN="16384")
    worker = WorkerProcess("tiny-doomed", env).wait_ready()
    yield worker
    worker.stop()


def test_a_worker_failure_mid_stream_is_billed_for_what_it_produced(
    served, tenant_a, doomed_worker, redis_url
):
    wait_registered(redis_url, "tiny-doomed")
    key = served.create_key(tenant_a)["key"]
    body = {**LONG_STREAM, "model": "tiny-doomed"}
    with served.client.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key)) as stream:
        lines = stream.iter_lines()
        received = [line for line in (next(lines) for _ in range(12)) if line.startswith("data: ")]
        doomed_worker.kill()
        rest = [line for line in lines if line.startswith("data: ")]
    assert '"model_error"' in rest[-1]  # the stream ends with the error, in band
    billed = _wait_for_usage(served, tenant_a, "tiny-doomed")
    assert len(received) - 1 <= billed["completion_tokens"] < LONG and billed["prompt_tokens"] > 0


def _wait_for_usage(platform, tenant, model: str) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        report = platform.client.get(
            f"/{tenant.slug}/admin/usage", params={"group_by": "model"}, headers=tenant.admin_headers
        ).json()
        rows = [row for row in report["rows"] if row["model"] == model]
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"no usage recorded for {model}")
