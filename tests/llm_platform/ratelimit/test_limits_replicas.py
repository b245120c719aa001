"""Limits across API replicas sharing one Redis, and what happens when that Redis goes away."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import Counter

import httpx
import pytest
from fastapi.testclient import TestClient
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from llm_platform.app import create_app
from tests.conftest import TINY_MODEL, PlatformHelper
from tests.responses import bearer
from tests.workers import ApiProcess, WorkerProcess, free_port, wait_registered, worker_env

# The shortest turn: these tests count admissions, not answers.
GREETING = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def two_apis(database_url, redis_url, tmp_path, settings, tiny_worker, clean_state):  # type: ignore[no-untyped-def]
    env = worker_env(database_url, redis_url, tmp_path, LLMP_JWT_SECRET=settings.resolved_jwt_secret)
    apis = [ApiProcess(env) for _ in range(2)]
    try:
        yield [api.wait_ready().url for api in apis]
    finally:
        for api in apis:
            api.stop()


def test_two_api_processes_admit_exactly_the_limit(two_apis, platform, tenant_a, redis_url):
    limit, attempts = 10, 50
    platform.set_limits(tenant_a, requests_per_minute=limit)
    key = platform.create_key(tenant_a)["key"]
    wait_registered(redis_url, TINY_MODEL)
    body = {"model": TINY_MODEL, "messages": GREETING, "max_tokens": 1}

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"{two_apis[i % 2]}/v1/chat/completions", json=body, headers=bearer(key))
                    for i in range(attempts)
                )
            )
        return [response.status_code for response in responses]

    statuses = Counter(asyncio.run(burst()))
    assert statuses == {200: limit, 429: attempts - limit}


@pytest.fixture
def own_redis(tmp_path):  # type: ignore[no-untyped-def]
    """A Redis server of this test's own, so stopping it leaves the shared one alone."""
    port = free_port()
    server = shutil.which("redis-server") or "redis-server"
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([server, *options, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            Redis.from_url(url).ping()
            break
        except RedisConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield url, process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_redis_stopped_mid_test_fail_open_serves_fail_closed_answers_503(
    own_redis, database_url, settings, tiny_worker, clean_state, tmp_path
):
    url, redis_process = own_redis
    worker = WorkerProcess(TINY_MODEL, worker_env(database_url, url, tmp_path)).wait_ready()
    try:
        wait_registered(url, TINY_MODEL)
        with TestClient(create_app(settings.model_copy(update={"redis_url": url}))) as client:
            platform = PlatformHelper(client, settings)
            open_tenant, closed_tenant = platform.create_tenant(), platform.create_tenant()
            platform.set_limits(open_tenant, requests_per_minute=3)
            platform.set_limits(closed_tenant, requests_per_minute=3, fail_mode="closed")
            keys = {t.slug: platform.create_key(t)["key"] for t in (open_tenant, closed_tenant)}
            body = {"model": TINY_MODEL, "messages": GREETING, "max_tokens": 2, "temperature": 0}

            def chat(tenant):  # type: ignore[no-untyped-def]
                return client.post("/v1/chat/completions", json=body, headers=bearer(keys[tenant.slug]))

            assert [chat(open_tenant).headers["x-cache"] for _ in range(2)] == ["miss", "hit"]
            assert chat(closed_tenant).status_code == 200
            redis_process.kill()
            redis_process.wait()

            # Fail-open: served (uncached) under this process's own limiter, which still limits.
            answers = [chat(open_tenant) for _ in range(4)]
            assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
            assert all(answer.headers["x-cache"] == "miss" for answer in answers[:3])
            closed = chat(closed_tenant)
            assert closed.status_code == 503 and closed.json()["error"]["code"] == "limits_unavailable"
            assert closed.headers["retry-after"] == "1"
            # Logins keep working, their failures counted by this process meanwhile.
            wrong = {
                "username": open_tenant.admin_email,
                "password": "wrong-password",
                "tenant": open_tenant.slug,
            }
            assert client.post("/auth/token", data=wrong).status_code == 401
            assert platform.login(open_tenant.admin_email, tenant=open_tenant.slug)["access_token"]
            metrics = client.get("/metrics").text
            assert 'llmp_rate_limits_degraded_total{mode="open"}' in metrics
            assert 'llmp_rate_limits_degraded_total{mode="closed"}' in metrics
    finally:
        worker.stop()
