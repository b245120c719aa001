"""The audit writer against a real Postgres: outages spill to the spool and come back exactly once,
concurrent writers keep one valid chain, pruning keeps it verifiable."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from prometheus_client import REGISTRY
from sqlalchemy import func, select

from llm_platform.audit import chain
from llm_platform.audit.chain import AuditEntry
from llm_platform.audit.models import AuditRecord
from llm_platform.audit.service import prune
from llm_platform.audit.writer import RETRY_S, AuditWriter
from llm_platform.core.db import create_engine_for, create_session_factory
from llm_platform.core.migrate import upgrade_to_head
from llm_platform.core.settings import Settings


def _entry(tenant_id: uuid.UUID, index: int, at: datetime | None = None) -> AuditEntry:
    return AuditEntry(
        at=at or datetime.now(UTC),
        action="create_conversation",
        resource=f"/t/conversations/{index}",
        status=201,
        latency_ms=index % 7,
        event_id=uuid.uuid4(),
        tenant_id=tenant_id,
        request_id=f"req-{index}",
    )


async def _count_and_verify(settings: Settings, chain_name: str) -> tuple[int, int, chain.Verification]:
    engine = create_engine_for(settings)
    async with create_session_factory(engine)() as session:
        total, distinct = (
            await session.execute(
                select(func.count(), func.count(AuditRecord.event_id.distinct())).where(
                    AuditRecord.chain == chain_name
                )
            )
        ).one()
        verification = await chain.verify(session, chain_name)
    await engine.dispose()
    return total, distinct, verification


def test_an_outage_spills_to_the_spool_and_every_entry_arrives_once(
    database_url, db_proxy, clean_state, tmp_path
):
    spool_dir = tmp_path / "spool"

    async def scenario() -> None:
        settings = Settings(database_url=db_proxy.url(database_url), data_dir=tmp_path)
        engine = create_engine_for(settings)
        writer = AuditWriter(create_session_factory(engine), spool_dir, queue_size=1000, batch_size=40)
        await writer.start()
        tenant_id = uuid.uuid4()
        entries = [_entry(tenant_id, index) for index in range(300)]
        for entry in entries[:100]:
            writer.record(entry)
        await writer.flush()

        db_proxy.cut()  # Postgres is unreachable in the middle of a burst
        for entry in entries[100:250]:
            writer.record(entry)
            await asyncio.sleep(0)
        await writer.flush()
        assert list(spool_dir.glob("*.jsonl"))  # spooled, fsync'd, not dropped

        db_proxy.start()  # it is back
        await asyncio.sleep(RETRY_S + 0.1)
        for entry in entries[250:]:
            writer.record(entry)
        await writer.flush()
        await writer.close()
        await engine.dispose()
        assert not list(spool_dir.glob("*.jsonl"))  # replayed and removed

        direct = Settings(database_url=database_url, data_dir=tmp_path)
        total, distinct, verification = await _count_and_verify(direct, str(tenant_id))
        assert (total, distinct) == (300, 300)
        assert verification.ok and verification.rows == 300

        # A spool replayed again (a crash between the commit and the file's removal) adds nothing.
        dead_pid = _a_dead_pid()
        (spool_dir / f"{dead_pid}.1.1.jsonl").write_text("".join(e.to_json() + "\n" for e in entries[90:110]))
        engine = create_engine_for(direct)
        again = AuditWriter(create_session_factory(engine), spool_dir)
        await again.start()
        await again.close()
        await engine.dispose()
        assert (await _count_and_verify(direct, str(tenant_id)))[:2] == (300, 300)

    asyncio.run(scenario())


def _a_dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_a_full_queue_spills_instead_of_blocking_or_dropping(database_url, clean_state, tmp_path):
    async def scenario() -> None:
        settings = Settings(database_url=database_url, data_dir=tmp_path)
        engine = create_engine_for(settings)
        writer = AuditWriter(create_session_factory(engine), tmp_path / "spool", queue_size=2)
        tenant_id = uuid.uuid4()
        for index in range(10):  # the writer is not started: nothing drains the queue
            writer.record(_entry(tenant_id, index))
        [spooled] = (tmp_path / "spool").glob("*.jsonl")
        # Entries may hold prompts and answers: readable by the platform's user alone, whatever the umask.
        assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
        assert spooled.stat().st_mode & 0o777 == 0o600
        # /metrics shows the spool's size, and the queue's depth.
        assert _gauge("llmp_audit_spool_bytes") == spooled.stat().st_size > 0
        assert _gauge("llmp_audit_queue_depth") == 2
        await writer.start()  # replays the spool
        assert _gauge("llmp_audit_spool_bytes") == 0
        await writer.close()  # and writes out the queue
        await engine.dispose()
        total, distinct, verification = await _count_and_verify(settings, str(tenant_id))
        assert (total, distinct) == (10, 10) and verification.ok

    asyncio.run(scenario())


def _write_many(database_url: str, data_dir: str, tenant_id: str, count: int) -> None:
    async def run() -> None:
        engine = create_engine_for(Settings(database_url=database_url, data_dir=Path(data_dir)))
        writer = AuditWriter(
            create_session_factory(engine), Path(data_dir) / f"spool-{os.getpid()}", batch_size=25
        )
        await writer.start()
        for index in range(count):
            writer.record(_entry(uuid.UUID(tenant_id), index))
            if index % 10 == 0:
                await asyncio.sleep(0)  # let batches interleave with the other process's
        await writer.close()
        await engine.dispose()

    asyncio.run(run())


def test_two_processes_writing_at_once_keep_one_valid_chain(database_url, clean_state, tmp_path):
    tenant_id = str(uuid.uuid4())
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_write_many, args=(database_url, str(tmp_path), tenant_id, 400))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    total, distinct, verification = asyncio.run(
        _count_and_verify(Settings(database_url=database_url, data_dir=tmp_path), tenant_id)
    )
    assert (total, distinct) == (800, 800)
    assert verification.ok and verification.rows == 800, verification
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_pruning_keeps_the_rest_verifiable(database_url, clean_state, tmp_path):
    async def scenario() -> None:
        settings = Settings(database_url=database_url, data_dir=tmp_path)
        engine = create_engine_for(settings)
        sessions = create_session_factory(engine)
        tenant_id, now = uuid.uuid4(), datetime.now(UTC)
        old = [_entry(tenant_id, index, now - timedelta(days=400)) for index in range(10)]
        recent = [_entry(tenant_id, index, now) for index in range(10, 15)]
        async with sessions() as session:
            await chain.append(session, old + recent)
        async with sessions() as session:
            assert await prune(session, now - timedelta(days=365)) == 10
            assert await prune(session, now - timedelta(days=365)) == 0  # idempotent
        async with sessions() as session:
            await chain.append(session, [_entry(tenant_id, 99)])  # the chain goes on after the cut
        await engine.dispose()
        total, _, verification = await _count_and_verify(settings, str(tenant_id))
        assert total == 6 and verification.ok and verification.rows == 6

    asyncio.run(scenario())


def test_rows_read_back_exactly_as_written_on_postgres_and_sqlite(database_url, clean_state, tmp_path):
    """Postgres takes the rows by COPY and SQLite by an executemany: both must store every field as
    given, awkward text and a non-UTC timestamp included, and the chain must verify."""
    tenant_id = uuid.uuid4()
    awkward = "tab\there, newline\n, backslash \\N, quote \" ' and ünïcødé ✓"
    entries = [
        AuditEntry(
            at=datetime(2026, 11, 23, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=2))),
            action="chat_completions",
            resource="/v1/chat/completions",
            status=200,
            latency_ms=12,
            event_id=uuid.uuid4(),
            tenant_id=tenant_id,
            actor_kind="api_key",
            actor_id=uuid.uuid4(),
            key_prefix="sk-abc",
            model="tiny",
            prompt_tokens=7,
            completion_tokens=3,
            cache_hit=False,
            client_address="10.0.0.1",
            user_agent=awkward,
            request_id="req-1",
            request_sha256="a" * 64,
            response_sha256="b" * 64,
            request_text=awkward,
            response_text=None,
        ),
        _entry(tenant_id, 2),
    ]
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}"
    upgrade_to_head(sqlite_url)

    async def scenario(url: str) -> None:
        engine = create_engine_for(Settings(database_url=url, data_dir=tmp_path))
        sessions = create_session_factory(engine)
        try:
            async with sessions() as session:
                assert await chain.append(session, entries) == 2
            async with sessions() as session:
                stored = (await session.scalars(select(AuditRecord).order_by(AuditRecord.seq))).all()
                assert [row.seq for row in stored] == [1, 2]
                for row, entry in zip(stored, entries, strict=True):
                    assert {name: getattr(row, name) for name in entry.values()} == entry.values()
                assert stored[0].at.utcoffset() == timedelta(0)  # the same instant, read back in UTC
                assert (await chain.verify(session, str(tenant_id))).ok
        finally:
            await engine.dispose()

    for url in (database_url, sqlite_url):
        asyncio.run(scenario(url))


def _gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)
