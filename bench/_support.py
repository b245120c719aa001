"""What the benchmarks share: their own database and Redis, a stub worker and API processes, a tenant
with a key, free ports, percentiles."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from statistics import quantiles

import httpx
import psycopg
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.auth.principal import Principal
from llm_platform.core.db import create_engine_for, create_session_factory
from llm_platform.core.migrate import upgrade_to_head
from llm_platform.core.settings import Settings
from models_registry.models import Model, ModelBackend, ModelKind
from tenants import service
from tenants.models import TenantLimits

BENCH_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/llmp_bench"
BENCH_REDIS_URL = "redis://127.0.0.1:6379/1"
LLMP = str(Path(sys.executable).parent / "llmp")
STUB_MODEL = "stub"


def ensure_database(database_url: str) -> None:
    """Creates the benchmark database if missing and migrates it (never the tests' database)."""
    name = database_url.rsplit("/", 1)[1]
    admin = database_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
    upgrade_to_head(database_url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def report(result: dict[str, object], as_json: bool) -> None:
    """A benchmark's figures, a line each unless --json; the last line is always the JSON object."""
    if not as_json:
        for name, value in result.items():
            print(f"{name:28} {value}")
    print(json.dumps(result))


def percentiles(samples_ms: list[float], *cuts: int) -> list[float]:
    """The given percentiles (1-99) of the samples, rounded to microseconds."""
    points = quantiles(samples_ms, n=100)
    return [round(points[cut - 1], 3) for cut in cuts]


def wait_up(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:  # type: ignore[type-arg]
    """Blocks until `url` answers 200 (or the process dies, or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def flush_redis(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()


class Stack:
    """The benchmark's own database (migrated) and Redis db (flushed), a stub worker and API processes
    (`llmp serve`) that share them."""

    def __init__(self, database_url: str = BENCH_DATABASE_URL, redis_url: str = BENCH_REDIS_URL) -> None:
        data_dir = Path("var/bench")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.redis_url = redis_url
        self.worker_secret = secrets.token_urlsafe(32)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LLMP_")} | {
            "LLMP_DATABASE_URL": database_url,
            "LLMP_REDIS_URL": redis_url,
            "LLMP_DATA_DIR": str(data_dir),
            "LLMP_WORKER_SECRET": self.worker_secret,
            "LLMP_JWT_SECRET": secrets.token_urlsafe(48),
            "LLMP_LOG_LEVEL": "WARNING",
        }
        self.settings = Settings(database_url=database_url, redis_url=redis_url, data_dir=data_dir)
        self.processes: list[subprocess.Popen] = []  # type: ignore[type-arg]
        ensure_database(database_url)
        asyncio.run(flush_redis(redis_url))

    def start_stub(self) -> int:
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "bench.stub_worker",
            "--port",
            str(port),
            "--redis-url",
            self.redis_url,
        ]
        self.processes.append(
            subprocess.Popen([*command, "--secret", self.worker_secret, "--model", STUB_MODEL], env=self.env)
        )
        wait_up(f"http://127.0.0.1:{port}/internal/health", self.processes[-1])
        return port

    def start_api(self, wrap: list[str] | None = None) -> tuple[str, subprocess.Popen]:  # type: ignore[type-arg]
        """An API process, optionally run under another command (a profiler); its URL and process."""
        port = free_port()
        command = [*(wrap or []), LLMP, "serve", "--no-workers"]
        self.processes.append(subprocess.Popen(command, env=self.env | {"LLMP_PORT": str(port)}))
        url = f"http://127.0.0.1:{port}"
        wait_up(url + "/healthz", self.processes[-1])
        return url, self.processes[-1]

    def stop(self, interrupt: bool = False) -> None:
        for process in reversed(self.processes):
            process.send_signal(2 if interrupt else 15)
        for process in self.processes:
            process.wait(timeout=60)


async def ensure_model(
    session: AsyncSession, name: str, kind: ModelKind, source: str, context_length: int
) -> None:
    """A catalogue entry the benchmark serves (an hf model; one the catalogue has already is kept)."""
    if await session.scalar(select(Model).where(Model.name == name)) is None:
        session.add(
            Model(
                name=name,
                kind=kind,
                backend=ModelBackend.hf,
                source=source,
                context_length=context_length,
                default_params={},
                enabled=True,
            )
        )
        await session.commit()


async def make_tenant(settings: Settings, limit: int | None) -> tuple[uuid.UUID, str, Principal]:
    """A tenant limited to `limit` requests/min (None: unlimited; nothing else), an API key, and the
    stub model in the catalogue."""
    engine = create_engine_for(settings)
    async with create_session_factory(engine)() as session:
        await ensure_model(session, STUB_MODEL, ModelKind.chat, "stub", 2048)
        tenant = await service.create_tenant(session, f"bench-{uuid.uuid4().hex[:10]}")
        limits = await session.get(TenantLimits, tenant.id)
        assert limits is not None
        limits.requests_per_minute = limit
        await session.commit()
        api_key, secret = await service.create_api_key(session, tenant_id=tenant.id, name="bench")
        principal = Principal.of_api_key(api_key, tenant)
        tenant_id = tenant.id
    await engine.dispose()
    return tenant_id, secret, principal
