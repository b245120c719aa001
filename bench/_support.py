"""What the benchmarks share: their own database, free ports, percentiles."""

from __future__ import annotations

import socket
import subprocess
import time
from statistics import quantiles

import httpx
import psycopg
from redis.asyncio import Redis

from llm_platform.migrate import upgrade_to_head

BENCH_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/llmp_bench"


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
