"""Getting audit entries into Postgres off the request path, and losing none.

Requests put entries on a bounded in-memory queue and go on. A background task drains it in batches
(one transaction each, see chain.append). When Postgres cannot take a batch, or the queue is full, the
entries are appended to a spool file of this process and fsync'd; the spool is replayed once Postgres
answers again (at the latest, by the next process that starts and finds the file of a dead one).
Replays are exactly-once: rows carry the entry's id, and ids already stored are skipped. Shutdown
drains the queue first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_platform.audit import chain
from llm_platform.audit.chain import AuditEntry
from llm_platform.core.db import describe_error

logger = logging.getLogger(__name__)

WRITTEN = Counter("llmp_audit_rows_written_total", "Audit rows inserted into Postgres")
SPOOLED = Counter("llmp_audit_entries_spooled_total", "Audit entries written to the local spool file")
QUEUED = Gauge("llmp_audit_queue_depth", "Audit entries waiting in memory")
SPOOL_BYTES = Gauge("llmp_audit_spool_bytes", "Size of the spool files waiting to be replayed into Postgres")

RETRY_S = 1.0  # after a failed write, batches go straight to the spool for this long
LINGER_S = 0.05  # how long the first entry of a batch waits for company


class Spool:
    """Append-only JSON lines, fsync'd; one active file per process, named after its pid."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # Spooled entries may hold prompts and answers (tenants that keep text): the process's own, like
        # the database file and the secrets.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._generation = 0
        self.path = self._next_path()

    def _next_path(self) -> Path:
        self._generation += 1
        return self.directory / f"{os.getpid()}.{time.time_ns()}.{self._generation}.jsonl"

    def append(self, entries: list[AuditEntry]) -> None:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with open(descriptor, "a", encoding="utf-8") as spool:
            spool.write("".join(entry.to_json() + "\n" for entry in entries))
            spool.flush()
            os.fsync(spool.fileno())
        SPOOLED.inc(len(entries))

    def rotate(self) -> list[Path]:
        """Closes the active file for replay and returns every file there is to replay: this process's,
        and those of processes that are gone."""
        if self.path.exists():
            self.path = self._next_path()
        return sorted(
            path for path in self.directory.glob("*.jsonl") if path != self.path and _orphan_or_mine(path)
        )

    def size_bytes(self) -> int:
        """What the spool holds (read at scrape time: a directory listing, no file is opened)."""
        total = 0
        for path in self.directory.glob("*.jsonl"):
            with contextlib.suppress(FileNotFoundError):  # replayed and removed meanwhile
                total += path.stat().st_size
        return total


def _orphan_or_mine(path: Path) -> bool:
    pid = int(path.name.split(".", 1)[0])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class AuditWriter:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        spool_dir: Path,
        queue_size: int = 10_000,
        batch_size: int = 500,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = session_factory
        self._queue: asyncio.Queue[AuditEntry] = asyncio.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._spool = Spool(spool_dir)
        SPOOL_BYTES.set_function(self._spool.size_bytes)  # the process's writer (one per app)
        self._clock = clock
        self._down_until = 0.0
        self._spooled = True  # there may be files left by an earlier process: look once
        self._task: asyncio.Task[None] | None = None

    def record(self, entry: AuditEntry) -> None:
        """Never blocks the request: a full queue spills to the spool instead."""
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self._spool.append([entry])
            self._spooled = True
        QUEUED.set(self._queue.qsize())

    async def start(self) -> None:
        await self.replay_spool()  # what a previous process left behind
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def close(self) -> None:
        """Writes out everything still queued (to the spool if need be), then stops the background task.
        The task is cancelled only while it waits for entries: never in the middle of a batch."""
        if self._task is not None and not self._task.done():
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():  # never started (or it died): write here
            batch = self._take_batch()
            await self._write(batch)
            for _ in batch:
                self._queue.task_done()

    async def flush(self) -> None:
        """Returns once everything recorded so far is in Postgres or the spool."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if self._queue.qsize() < self._batch_size - 1:
                await asyncio.sleep(LINGER_S)  # gather a batch: one transaction for many requests
            batch = [first, *self._take_batch(self._batch_size - 1)]
            try:
                await self._write(batch)
            except Exception:  # the spool itself failed (disk full?): say so loudly, keep the task alive
                logger.exception("audit: %d entries could be neither written nor spooled", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _take_batch(self, limit: int | None = None) -> list[AuditEntry]:
        batch: list[AuditEntry] = []
        while not self._queue.empty() and len(batch) < (limit if limit is not None else self._batch_size):
            batch.append(self._queue.get_nowait())
        QUEUED.set(self._queue.qsize())
        return batch

    async def _write(self, batch: list[AuditEntry]) -> None:
        if not batch:
            return
        if self._clock() < self._down_until:
            self._spool.append(batch)
            self._spooled = True
            return
        try:
            async with self._sessions() as session:
                WRITTEN.inc(await chain.append(session, batch))
        except Exception as exc:  # Postgres unreachable (or refusing): nothing may be lost
            self._down_until = self._clock() + RETRY_S
            logger.warning(
                "audit: %d entries spooled, the database did not take them: %s",
                len(batch),
                describe_error(exc),
            )
            self._spool.append(batch)
            self._spooled = True
            return
        if self._spooled:
            await self.replay_spool()

    async def replay_spool(self) -> None:
        self._spooled = False
        for path in self._spool.rotate():
            try:
                entries = [
                    AuditEntry.from_json(line)
                    for line in path.read_text(encoding="utf-8").splitlines()
                    if line
                ]
                for start in range(0, len(entries), self._batch_size):
                    async with self._sessions() as session:
                        batch = entries[start : start + self._batch_size]
                        WRITTEN.inc(await chain.append(session, batch, replay=True))
            except Exception as exc:
                self._down_until = self._clock() + RETRY_S
                self._spooled = True
                logger.warning("audit: the spool %s stays for later: %s", path.name, describe_error(exc))
                return
            path.unlink()
            logger.info("audit: replayed %d spooled entries from %s", len(entries), path.name)
