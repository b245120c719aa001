"""Audit log benchmark: the admin listings and `verify` on a big table.

    python -m bench.audit [--rows 1000000] [--tenants 20] [--json]

Fills `audit_log` (in the database `llmp_bench`, never the tests') with --rows rows over --tenants
tenants, properly hash-chained, by COPY (not through HTTP); then times, through the service the API
calls, a tenant's listing filtered by time range and action (the first page, and a page 40 pages deep
by cursor), the same listing across all tenants, and `verify` of one tenant's chain (rows/--tenants
rows), with the process's peak RSS before and after. With --json the last line is one JSON object (a
contract: keep its keys).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from bench._support import BENCH_DATABASE_URL, ensure_database, percentiles, report
from llm_platform.audit.chain import ROW_COLUMNS, AuditEntry, row_hash, verify
from llm_platform.audit.models import GENESIS_HASH
from llm_platform.audit.service import AuditQuery, list_records
from llm_platform.core.db import create_engine_for, create_session_factory
from llm_platform.core.settings import Settings

ACTIONS = ["chat_completions", "tenant_chat_completions", "create_conversation", "ws_chat", "issue_token",
           "create_api_key", "revoke_api_key", "put_settings"]  # fmt: skip
SPAN_DAYS = 90


def fill(dsn: str, rows: int, tenants: list[uuid.UUID], start: datetime) -> float:
    """COPYs `rows` chained rows, round-robin over the tenants, in time order. Returns seconds."""
    rng = random.Random(7)
    per_tenant = rows // len(tenants)
    actors = {tenant: [uuid.uuid4() for _ in range(20)] for tenant in tenants}
    step = timedelta(days=SPAN_DAYS) / per_tenant
    heads = {tenant: (0, GENESIS_HASH) for tenant in tenants}
    started = time.perf_counter()
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_log, audit_heads")
        with cursor.copy(f"COPY audit_log ({', '.join(ROW_COLUMNS)}) FROM STDIN") as copy:
            for index in range(per_tenant):
                at = start + step * index
                for tenant in tenants:
                    action = ACTIONS[rng.randrange(len(ACTIONS))]
                    entry = AuditEntry(
                        at=at,
                        action=action,
                        resource=f"/t/{action}",
                        status=200 if rng.random() < 0.95 else 429,
                        latency_ms=rng.randrange(1, 900),
                        event_id=uuid.uuid4(),
                        tenant_id=tenant,
                        actor_kind="api_key",
                        actor_id=rng.choice(actors[tenant]),
                        key_prefix="sk-abcdef123456",
                        model="smollm2-135m" if "chat" in action else None,
                        prompt_tokens=rng.randrange(10, 400) if "chat" in action else None,
                        completion_tokens=rng.randrange(1, 300) if "chat" in action else None,
                        cache_hit=False,
                        client_address="10.0.0.7",
                        user_agent="bench/1.0",
                        request_id=uuid.uuid4().hex,
                        request_sha256="a" * 64,
                        response_sha256="b" * 64,
                    )
                    seq, previous = heads[tenant]
                    values: dict[str, object] = {
                        **entry.__dict__,
                        "chain": str(tenant),
                        "seq": seq + 1,
                        "prev_hash": previous,
                    }
                    values["row_hash"] = row_hash(values)
                    heads[tenant] = (seq + 1, str(values["row_hash"]))
                    copy.write_row([values[column] for column in ROW_COLUMNS])
        for tenant, (seq, last) in heads.items():
            cursor.execute(
                "INSERT INTO audit_heads (chain, seq, hash, pruned_seq, pruned_hash) "
                "VALUES (%s, %s, %s, 0, %s)",
                (str(tenant), seq, last, GENESIS_HASH),
            )
        connection.commit()
        cursor.execute("ANALYZE audit_log")
    return time.perf_counter() - started


async def time_listings(settings: Settings, tenants: list[uuid.UUID], start: datetime, runs: int) -> dict:
    engine = create_engine_for(settings)
    sessions = create_session_factory(engine)
    window = {"start": start + timedelta(days=30), "end": start + timedelta(days=60)}
    first, deep, everyone = [], [], []
    for run in range(runs):
        tenant = tenants[run % len(tenants)]
        query = AuditQuery(tenant_id=tenant, action="chat_completions", limit=100, **window)
        async with sessions() as session:
            began = time.perf_counter()
            _, cursor = await list_records(session, query)
            first.append((time.perf_counter() - began) * 1000)
            for _ in range(39):  # walk to the 40th page; only its fetch is timed
                _, cursor = await list_records(session, AuditQuery(**{**query.__dict__, "cursor": cursor}))
            began = time.perf_counter()
            rows, _ = await list_records(session, AuditQuery(**{**query.__dict__, "cursor": cursor}))
            deep.append((time.perf_counter() - began) * 1000)
            assert len(rows) == 100, "the window holds fewer than 40 pages: use more rows"
            began = time.perf_counter()
            await list_records(session, AuditQuery(action="chat_completions", limit=100, **window))
            everyone.append((time.perf_counter() - began) * 1000)
    await engine.dispose()
    return {
        "list_first_page_p50_ms": percentiles(first, 50)[0],
        "list_first_page_p95_ms": percentiles(first, 95)[0],
        "list_deep_page_p50_ms": percentiles(deep, 50)[0],
        "list_deep_page_p95_ms": percentiles(deep, 95)[0],
        "list_all_tenants_p95_ms": percentiles(everyone, 95)[0],
    }


async def time_verify(settings: Settings, tenant: uuid.UUID) -> dict:
    engine = create_engine_for(settings)
    rss_before = _peak_rss_mb()
    async with create_session_factory(engine)() as session:
        began = time.perf_counter()
        result = await verify(session, str(tenant))
        elapsed = time.perf_counter() - began
    await engine.dispose()
    assert result.ok, result
    return {
        "verify_rows": result.rows,
        "verify_s": round(elapsed, 2),
        "verify_peak_rss_mb_before": rss_before,
        "verify_peak_rss_mb_after": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--runs", type=int, default=40, help="timed listings of each kind")
    parser.add_argument("--database-url", default=BENCH_DATABASE_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    ensure_database(args.database_url)
    settings = Settings(database_url=args.database_url)
    tenants = [uuid.uuid4() for _ in range(args.tenants)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    dsn = args.database_url.replace("postgresql+psycopg://", "postgresql://")
    insert_s = fill(dsn, args.rows, tenants, start)
    result = {
        "rows": args.rows,
        "tenants": args.tenants,
        "insert_s": round(insert_s, 1),
        **asyncio.run(time_listings(settings, tenants, start, args.runs)),
        **asyncio.run(time_verify(settings, tenants[0])),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
