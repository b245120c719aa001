"""Worker processes: the registry follows them, dispatch survives a dead one, slots are freed."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from llm_platform.app import create_app
from llm_platform.core.redis_client import connect as connect_redis
from models_registry.registry import RedisWorkerRegistry
from models_registry.worker.protocol import WorkerInfo
from tests.conftest import TINY_MODEL, register_model
from tests.responses import assert_error, bearer
from tests.workers import TTL_S, WORKER_SECRET, WorkerProcess, wait_registered, worker_env

# A turn the tiny model answers at length when asked for many tokens.
STORY_REQUEST = [{"role": "user", "content": "Tell me a long story."}]


def _generate_body(max_tokens: int, model: str = TINY_MODEL) -> dict:
    return {
        "request_id": "r1",
        "tenant": "t",
        "model": model,
        "messages": STORY_REQUEST,
        "params": {"max_tokens": max_tokens, "temperature": 0},
    }


def test_worker_api_needs_the_shared_secret(tiny_worker):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(f"{tiny_worker.url}/internal/generate", json=_generate_body(4), headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_credentials"
    assert httpx.get(f"{tiny_worker.url}/internal/health").status_code == 401


LONG = 12_000  # tokens: several seconds even for the tiny model, so "still running" is certain


def _wait_idle(worker: WorkerProcess, timeout_s: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while (health := worker.health())["running"] + health["waiting"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return health


def test_a_client_that_goes_away_frees_its_slot(long_worker):
    headers = {"Authorization": f"Bearer {WORKER_SECRET}"}
    body = _generate_body(LONG, model="tiny-long") | {
        "params": {"max_tokens": LONG, "temperature": 1.0, "ignore_eos": True}
    }
    with httpx.stream(
        "POST", f"{long_worker.url}/internal/generate", json=body, headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: a dropped line iterator closes the stream
        assert "text" in next(lines)
        assert long_worker.health()["running"] == 1
        assert "text" in next(lines)
    assert _wait_idle(long_worker)["running"] == 0


def test_a_client_that_leaves_the_api_frees_the_worker_slot(long_worker, platform, tenant_a, redis_url):
    wait_registered(redis_url, "tiny-long")
    key = platform.create_key(tenant_a)["key"]
    body = {
        "model": "tiny-long",
        "messages": STORY_REQUEST,
        "max_tokens": LONG,
        "temperature": 1.0,
        "ignore_eos": True,  # sampled, the tiny model may end at once, and then nothing is running
        "stream": True,
    }
    with platform.client.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key)) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        assert long_worker.health()["running"] == 1
    assert _wait_idle(long_worker)["running"] == 0


@pytest.fixture
def two_workers(database_url, redis_url, db_engine, tiny_model_dir, tmp_path):  # type: ignore[no-untyped-def]
    register_model(db_engine, "tiny-pair", str(tiny_model_dir), 512)
    env = worker_env(database_url, redis_url, tmp_path)
    workers = [WorkerProcess("tiny-pair", env) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    yield workers
    for worker in workers:
        worker.stop()


def test_a_killed_worker_drops_out_and_requests_go_to_the_other(two_workers, platform, tenant_a, redis_url):
    key = platform.create_key(tenant_a)["key"]
    body = {"model": "tiny-pair", "messages": STORY_REQUEST, "max_tokens": 4}
    wait_registered(redis_url, "tiny-pair", count=2)
    two_workers[0].kill()
    # Still registered for up to a TTL: dispatch hits the dead one, fails before any token, retries.
    for _ in range(4):
        response = platform.client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert response.status_code == 200, response.text
    time.sleep(TTL_S + 0.5)
    live = wait_registered(redis_url, "tiny-pair", count=1)
    assert [w["url"] for w in live] == [two_workers[1].url]
    two_workers[1].kill()
    time.sleep(TTL_S + 0.5)
    assert_error(
        platform.client.post("/v1/chat/completions", json=body, headers=bearer(key)), 503, "model_unavailable"
    )


def test_a_full_queue_answers_503_with_retry_after(long_worker, platform, tenant_a, redis_url):
    wait_registered(redis_url, "tiny-long")
    headers = {"Authorization": f"Bearer {WORKER_SECRET}"}
    body = _generate_body(LONG, model="tiny-long") | {
        "params": {"max_tokens": LONG, "temperature": 1.0, "ignore_eos": True}
    }
    url = f"{long_worker.url}/internal/generate"
    with (
        httpx.stream("POST", url, json=body, headers=headers, timeout=30) as running,
        httpx.stream("POST", url, json=body, headers=headers, timeout=30) as queued,
    ):
        assert running.status_code == 200 and queued.status_code == 200
        assert long_worker.health()["waiting"] == 1
        key = platform.create_key(tenant_a)["key"]
        response = platform.client.post(
            "/v1/chat/completions",
            json={"model": "tiny-long", "messages": STORY_REQUEST, "max_tokens": 4},
            headers=bearer(key),
        )
        error = assert_error(response, 503, "model_overloaded")
        assert int(response.headers["retry-after"]) >= 1 and "tiny-long" in error["message"]
    _wait_idle(long_worker)


def test_embedded_heartbeats_are_not_audited(settings, clean_state, db_engine):
    embedded = settings.model_copy(update={"redis_url": None})
    worker = WorkerInfo("w1", "http://127.0.0.1:1", (TINY_MODEL,), 4, 0, time.time())
    with TestClient(create_app(embedded)) as client:
        for _ in range(3):
            response = client.post(
                "/internal/workers", content=worker.to_json(), headers=bearer(WORKER_SECRET)
            )
            assert response.status_code == 204
        # A wrong secret is someone probing the internal API: that stays on the record.
        assert (
            client.post("/internal/workers", content=worker.to_json(), headers=bearer("wrong")).status_code
            == 401
        )
        client.portal.call(client.app.state.platform.audit.flush)  # type: ignore[attr-defined]
    with db_engine.connect() as connection:
        rows = connection.execute(text("SELECT action, status FROM audit_log")).all()
    assert [tuple(row) for row in rows] == [("heartbeat", 401)]


ALONE = "registry-test-model"  # served by no real worker: the session's tiny worker heartbeats meanwhile


def test_a_redis_restarted_empty_keeps_the_last_workers_for_a_heartbeat_round(redis_url, clean_state):
    async def scenario() -> None:
        redis = connect_redis(redis_url)
        registry = RedisWorkerRegistry(redis, ttl_s=1.0, fresh_s=0)
        first, second = (
            WorkerInfo(f"w{n}", "http://127.0.0.1:1", (ALONE,), 4, 0, time.time()) for n in (1, 2)
        )
        for worker in (first, second):
            await registry.heartbeat(worker)
        assert {w.worker_id for w in await registry.live_workers(ALONE)} == {"w1", "w2"}
        await redis.flushdb()  # what a Redis restarted without persistence looks like
        assert {w.worker_id for w in await registry.live_workers(ALONE)} == {"w1", "w2"}  # still served
        await registry.heartbeat(second)  # the first to report again does not push the other out
        assert {w.worker_id for w in await registry.live_workers(ALONE)} == {"w1", "w2"}
        await asyncio.sleep(1.1)  # a whole TTL without a heartbeat from w1: it is gone after all
        await registry.heartbeat(second)
        assert await registry.live_workers(ALONE) == [second]
        await registry.remove("w2")  # a worker that stops (no data lost) drops out at once
        assert await registry.live_workers(ALONE) == []
        await redis.aclose()

    asyncio.run(scenario())


def test_a_burst_on_a_stale_registry_reads_redis_once(redis_url, clean_state):
    # Each request used to send its own read: under a burst, a hundred connections opened at once timed
    # out connecting and those requests answered 503 with no worker known.
    async def scenario() -> None:
        redis = connect_redis(redis_url)
        registry = RedisWorkerRegistry(redis, ttl_s=1.0)
        worker = WorkerInfo("w1", "http://127.0.0.1:1", (ALONE,), 4, 0, time.time())
        await registry.heartbeat(worker)
        reads = 0
        read = registry._read

        async def counted(*args):  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += 1
            return await read(*args)

        registry._read = counted  # type: ignore[method-assign]
        found = await asyncio.gather(*(registry.live_workers(ALONE) for _ in range(100)))
        assert found == [[worker]] * 100 and reads == 1
        await redis.aclose()

    asyncio.run(scenario())
