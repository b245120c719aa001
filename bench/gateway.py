"""Gateway benchmark: what the API layer adds in front of a worker that answers at once.

    python -m bench.gateway [--requests 500] [--rss-requests 50000] [--json]

Starts a stub worker (bench/stub_worker.py) and one API process (`llmp serve`), with Postgres and Redis
(database `llmp_bench`, Redis db 1). This process is the load generator (at 100 clients, several
processes: --load-processes). The same run measures:
- calling the stub directly (`POST /internal/generate`) and through the API (`POST /v1/chat/completions`,
  sampled so the cache never answers: auth, limits, cache lookup, dispatch, usage, audit enqueue);
- latency p50 at 1 client and p99 at 10 clients, requests/s at 100 clients, for both;
- a cache hit's latency (a greedy request repeated), p50 at 1 client;
- the API process's CPU time per call (10 clients) and per cache hit, the figure to compare code by;
- the API process's RSS before and after --rss-requests more requests through it.
With --json the last line is one JSON object (a contract: keep its keys).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import platform
import time
from pathlib import Path

import aiohttp

from bench._support import (
    BENCH_DATABASE_URL,
    BENCH_REDIS_URL,
    STUB_MODEL,
    Stack,
    make_tenant,
    percentiles,
    report,
)
from models_registry.worker.protocol import GENERATE_PATH, GenerateParams, GenerateRequest

MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]
WARM_ROUNDS = 20  # rounds of `clients` concurrent calls before a latency measurement


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


def _cpu_s(pid: int) -> float:
    """The process's user + system CPU time so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child_pid(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0])


class Target:
    """One way to ask for an answer: the stub directly, or the API in front of it."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.url, self.body, self.headers = url, body, headers

    async def call(self, client: aiohttp.ClientSession) -> float:
        started = time.perf_counter()
        async with client.post(self.url, data=self.body, headers=self.headers) as response:
            body = await response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{self.url}: {response.status} {body[:300]!r}")
        return elapsed


def _client(connections: int) -> aiohttp.ClientSession:
    """The load generator's HTTP client. aiohttp, not httpx, which spends several times its CPU a request
    (bench/RESULTS.md, gateway, second round): the load generator's CPU is taken from the servers it
    measures when they share a small machine."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections), timeout=aiohttp.ClientTimeout(total=60)
    )


async def latencies(target: Target, clients: int, per_client: int) -> list[float]:
    async with _client(clients) as client:
        # Warm every connection the measurement uses, and the pools behind them (the API's to the
        # worker, Redis, Postgres), at the measured concurrency: a new connection's first request pays
        # its setup, which is no part of steady-state latency. Warmed one at a time, nine of the ten
        # clients' first requests would land in the 10-client p99 as its slowest samples.
        for _ in range(WARM_ROUNDS):
            await asyncio.gather(*(target.call(client) for _ in range(clients)))

        async def one_client() -> list[float]:
            return [await target.call(client) for _ in range(per_client)]

        runs = await asyncio.gather(*(one_client() for _ in range(clients)))
    return [sample for run in runs for sample in run]


async def _client_loop(target: Target, clients: int, seconds: float) -> tuple[int, float]:
    async with _client(clients) as client:
        await asyncio.gather(*(target.call(client) for _ in range(clients)))  # open the connections
        done, deadline = 0, time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await target.call(client)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        return done, time.perf_counter() - started


def _quiet_collector() -> None:
    """The load generator's own pauses must not show up as the servers' latency: this process holds
    every object of the platform (it imports it to set up), and a full collection over them stalls
    every client at once, several times per phase. Frozen, they are out of the collector's sight."""
    gc.collect()
    gc.freeze()


def _load_process(target: Target, clients: int, seconds: float, results: multiprocessing.Queue) -> None:
    _quiet_collector()
    results.put(asyncio.run(_client_loop(target, clients, seconds)))


def throughput(target: Target, clients: int, seconds: float, processes: int) -> float:
    """Requests/s with `clients` concurrent clients spread over `processes` load-generator processes
    (one Python process cannot keep 100 connections busy: it would measure itself, not the server)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_load_process, args=(target, clients // processes, seconds, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    return round(sum(done / elapsed for done, elapsed in outcomes), 1)


async def send_many(target: Target, count: int, clients: int = 20) -> None:
    async with _client(clients) as client:

        async def one_client(share: int) -> None:
            for _ in range(share):
                await target.call(client)

        await asyncio.gather(*(one_client(count // clients) for _ in range(clients)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=500, help="per latency measurement (per client at 10)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput measurement")
    parser.add_argument("--rss-requests", type=int, default=50_000)
    parser.add_argument("--load-processes", type=int, default=4, help="load generators at 100 clients")
    parser.add_argument("--database-url", default=BENCH_DATABASE_URL)
    parser.add_argument("--redis-url", default=BENCH_REDIS_URL)
    parser.add_argument(
        "--profile", metavar="FILE", help="run the API under py-spy, collapsed stacks to FILE"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    stack = Stack(args.database_url, args.redis_url)
    _, key, _ = asyncio.run(make_tenant(stack.settings, None))
    try:
        stub_port = stack.start_stub()
        # py-spy samples the API process: where does a request's time go?
        wrap = (
            ["py-spy", "record", "--format", "raw", "--rate", "200", "-o", args.profile, "--"]
            if args.profile
            else []
        )
        api_url, api = stack.start_api(wrap)
        worker_secret = stack.worker_secret

        direct_body = GenerateRequest(
            request_id="bench",
            tenant="bench",
            model=STUB_MODEL,
            messages=MESSAGES,
            params=GenerateParams(max_tokens=1),
        ).model_dump_json()
        direct = Target(
            f"http://127.0.0.1:{stub_port}{GENERATE_PATH}",
            direct_body.encode(),
            {"Authorization": f"Bearer {worker_secret}", "Content-Type": "application/json"},
        )
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        sampled = {"model": STUB_MODEL, "messages": MESSAGES, "max_tokens": 1, "temperature": 1.0}
        gateway = Target(f"{api_url}/v1/chat/completions", json.dumps(sampled).encode(), headers)
        greedy = {**sampled, "temperature": 0}
        cached = Target(f"{api_url}/v1/chat/completions", json.dumps(greedy).encode(), headers)

        api_pid = api.pid if not args.profile else _child_pid(api.pid)
        _quiet_collector()
        direct_1 = asyncio.run(latencies(direct, 1, args.requests))
        gateway_1 = asyncio.run(latencies(gateway, 1, args.requests))
        direct_10 = asyncio.run(latencies(direct, 10, args.requests // 10 * 2))
        # The API process's CPU per call is the figure to compare code by (A/B): unlike latency, it
        # hardly depends on what else the machine runs. Warm-up calls included, as in the count.
        cpu_start = _cpu_s(api_pid)
        gateway_10 = asyncio.run(latencies(gateway, 10, args.requests // 10 * 2))
        cpu_per_call_ms = (_cpu_s(api_pid) - cpu_start) * 1000 / (len(gateway_10) + WARM_ROUNDS * 10)
        cpu_start = _cpu_s(api_pid)
        hits = asyncio.run(latencies(cached, 1, args.requests))
        cpu_per_hit_ms = (_cpu_s(api_pid) - cpu_start) * 1000 / (len(hits) + WARM_ROUNDS)
        rps_direct = throughput(direct, 100, args.seconds, args.load_processes)
        rps_gateway = throughput(gateway, 100, args.seconds, args.load_processes)

        rss_start = _rss_mb(api_pid)
        started = time.perf_counter()
        asyncio.run(send_many(gateway, args.rss_requests))
        rss_seconds = time.perf_counter() - started
        rss_end = _rss_mb(api_pid)
    finally:
        stack.stop(interrupt=bool(args.profile))  # py-spy writes its profile when interrupted

    (direct_p50,) = percentiles(direct_1, 50)
    (gateway_p50,) = percentiles(gateway_1, 50)
    (direct_p99,) = percentiles(direct_10, 99)
    (gateway_p99,) = percentiles(gateway_10, 99)
    result = {
        "added_p50_ms_1_client": round(gateway_p50 - direct_p50, 3),
        "added_p99_ms_10_clients": round(gateway_p99 - direct_p99, 3),
        "cache_hit_p50_ms": percentiles(hits, 50)[0],
        "rps_gateway_100_clients": rps_gateway,
        "rps_direct_100_clients": rps_direct,
        "gateway_p50_ms_1_client": gateway_p50,
        "direct_p50_ms_1_client": direct_p50,
        "gateway_p99_ms_10_clients": gateway_p99,
        "direct_p99_ms_10_clients": direct_p99,
        "api_cpu_ms_per_call_10_clients": round(cpu_per_call_ms, 3),
        "api_cpu_ms_per_cache_hit": round(cpu_per_hit_ms, 3),
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "rss_requests": args.rss_requests,
        "rss_requests_per_s": round(args.rss_requests / rss_seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
