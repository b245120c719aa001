"""Usage increments off the request path: summed in memory per bucket, written every FLUSH_S.

A request adds to a bucket (tenant, day, model, principal) and goes on; a background task upserts the
buckets in one statement. Anything that reads the ledger in this process (usage reports, quota
rebuilds) flushes first, so this process's own requests are always counted; other replicas' are at
most FLUSH_S behind (a usage report depends on UsageSyncedDep for that). Postgres unreachable: the sums
stay in memory and are retried. What a crash of the process loses is at most FLUSH_S of usage; the rate
limits themselves are kept in Redis, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from llm_platform.core.db import describe_error
from tenants.usage import Bucket, Increment, UsageRecord, add_usage

logger = logging.getLogger(__name__)

FLUSH_S = 0.5


class UsageWriter:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], flush_s: float = FLUSH_S) -> None:
        self._sessions = session_factory
        self._flush_s = flush_s
        self._pending: dict[Bucket, Increment] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def book(self, record: UsageRecord, admitted_at: datetime) -> None:
        """A model call's usage, booked on the day the meter admitted it, as its quota was (a call that
        runs past midnight counts where its reservation did)."""
        self.add(Increment.of(record, admitted_at.date()))

    def add(self, increment: Increment) -> None:
        pending = self._pending.get(increment.bucket)
        if pending is None:
            self._pending[increment.bucket] = increment
        else:
            pending.add(increment)

    async def flush(self) -> None:
        """Writes what is pending; on failure it stays pending (merged with what comes meanwhile)."""
        async with self._lock:
            if not self._pending:
                return
            taken, self._pending = self._pending, {}
            try:
                async with self._sessions() as session:
                    await add_usage(session, list(taken.values()))
                    await session.commit()
            except Exception as exc:
                for increment in taken.values():
                    self.add(increment)
                logger.warning("usage: %d buckets kept for the next try: %s", len(taken), describe_error(exc))
                raise

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:
            logger.error("usage: %d buckets could not be written at shutdown", len(self._pending))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            with contextlib.suppress(Exception):  # logged by flush; retried next time
                await asyncio.shield(self.flush())  # a cancel at shutdown must not cut a write in half


async def sync_usage(connection: HTTPConnection) -> None:
    """This process's pending usage increments are written before a report reads the ledger."""
    writer: UsageWriter = connection.app.state.platform.usage
    # A failure is logged by the writer; the report is then a moment behind, never an error.
    with contextlib.suppress(Exception):
        await writer.flush()


UsageSyncedDep = Annotated[None, Depends(sync_usage)]
