"""The API process's view of the live workers: who serves which model, how loaded, last heard from when.

A worker entry expires a few heartbeats after the worker goes quiet, so a dead worker drops out by
itself. With Redis, workers write their own entries (a key with a TTL; the entry and its keys are in
models_registry.worker.protocol, shared with the workers) and every API replica reads them; in embedded
mode the API keeps an in-process registry that workers report to over HTTP (WorkerRegistryDep hands it
to that route).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Protocol

from fastapi import Depends
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from llm_platform.core.ids import new_hex_id
from models_registry.worker.protocol import (
    WORKER_INDEX_KEY,
    WORKER_KEY_PREFIX,
    WorkerInfo,
    remove_worker_entry,
    write_worker_entry,
)

logger = logging.getLogger(__name__)

# Written by the first reader to find it missing, with a value of its own: a reader that finds another
# value than it last saw knows Redis lost its data (a restart without persistence, a FLUSHDB).
_EPOCH_KEY = "llmp:worker-epoch"
# Entry keys are derived from the index, so this script is for a single Redis, not a Cluster.
_READ_LIVE = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[2], epoch)
end
local live = {epoch}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local entry = redis.call('GET', ARGV[1] .. id)
  if entry then live[#live + 1] = entry else redis.call('SREM', KEYS[1], id) end
end
return live
"""


class WorkerRegistry(Protocol):
    async def heartbeat(self, worker: WorkerInfo) -> None: ...

    async def remove(self, worker_id: str) -> None: ...

    async def live_workers(self, model: str | None = None) -> list[WorkerInfo]: ...


class InProcessWorkerRegistry:
    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._workers: dict[str, WorkerInfo] = {}

    async def heartbeat(self, worker: WorkerInfo) -> None:
        if worker.worker_id not in self._workers:
            _log_joined(worker)
        self._workers[worker.worker_id] = worker

    async def remove(self, worker_id: str) -> None:
        if (worker := self._workers.pop(worker_id, None)) is not None:
            _log_left(worker, "left the registry")

    async def live_workers(self, model: str | None = None) -> list[WorkerInfo]:
        now = time.time()
        for worker in [w for w in self._workers.values() if now - w.heartbeat_at > self._ttl_s]:
            del self._workers[worker.worker_id]
            silent_s = now - worker.heartbeat_at
            _log_left(
                worker, f"dropped out of the registry: no heartbeat for {silent_s:.1f} s", logging.WARNING
            )
        return [w for w in self._workers.values() if model is None or model in w.models]


class RedisWorkerRegistry:
    """Each worker's entry is a key with a TTL (so a dead worker drops out by itself), listed in an index
    set that readers prune of expired entries: one round trip per read, whatever else Redis holds (a
    SCAN would walk every rate-limit and cache key).

    A list read less than `fresh_s` ago is reused: entries change once a heartbeat (every second or
    so), while every model call reads them (a Redis script per request was ~4% of a call's CPU).

    After Redis lost its data (restarted empty, flushed), the workers are still there and write their
    entries again within a heartbeat, one by one. So for `ttl_s` after a reader notices (the epoch key
    changed), the workers it knew from before are kept beside those that have reported again; a worker
    that stops or dies at any other time drops out as its entry does."""

    def __init__(self, redis: Redis, ttl_s: float, fresh_s: float = 0.25) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._fresh_s = fresh_s
        self._read = redis.register_script(_READ_LIVE)
        self._last_seen: list[WorkerInfo] = []
        self._read_at = float("-inf")  # monotonic time of the last successful read
        self._epoch: bytes | None = None  # the epoch key's value at the last read
        self._before_loss: list[WorkerInfo] = []  # the workers known when Redis was found to have lost them
        self._lost_at = float("-inf")  # monotonic time that was noticed
        self._reading: asyncio.Task[None] | None = None  # the read under way, shared by its callers

    async def heartbeat(self, worker: WorkerInfo) -> None:
        await write_worker_entry(self._redis, worker, self._ttl_s)

    async def remove(self, worker_id: str) -> None:
        await remove_worker_entry(self._redis, worker_id)

    async def live_workers(self, model: str | None = None) -> list[WorkerInfo]:
        if time.monotonic() - self._read_at >= self._fresh_s:
            # One read for every request that finds the list stale: a burst used to send one each, and
            # a hundred new connections at once timed out connecting under load (503 for each).
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read_workers())
                self._reading.add_done_callback(self._read_done)
            await asyncio.shield(self._reading)
        return [w for w in self._last_seen if model is None or model in w.models]

    async def _read_workers(self) -> None:
        try:
            epoch, *raws = await self._read([WORKER_INDEX_KEY, _EPOCH_KEY], [WORKER_KEY_PREFIX, new_hex_id()])
        except (RedisError, OSError) as exc:
            # Workers outlive a Redis outage; the last list we read keeps requests flowing (a worker that
            # died meanwhile fails its request, which dispatch retries elsewhere).
            logger.warning("worker registry unreadable (Redis: %s); using the last known workers", exc)
            return
        now = time.monotonic()
        if self._epoch is not None and epoch != self._epoch:
            self._before_loss, self._lost_at = self._last_seen, now
            logger.warning("worker registry: Redis lost its entries; keeping the known workers for a TTL")
        self._epoch = epoch
        seen = []
        for raw in raws:
            try:
                seen.append(WorkerInfo.from_json(raw))
            except (ValueError, KeyError, TypeError):  # one unreadable entry must not hide the others
                logger.warning("worker registry: an entry could not be read; skipped")
        if now - self._lost_at < self._ttl_s:
            reported = {worker.worker_id for worker in seen}
            seen += [worker for worker in self._before_loss if worker.worker_id not in reported]
        _log_changes(self._last_seen, seen)
        self._last_seen = seen
        self._read_at = now

    def _read_done(self, task: asyncio.Task[None]) -> None:
        self._reading = None
        if not task.cancelled():
            task.exception()  # retrieved: its awaiters got it (RedisBusy), or all of them went away


# One line per worker that joins or drops out, so an operator can follow the pool in the API's log.
def _log_joined(worker: WorkerInfo) -> None:
    logger.info(
        "worker %s joined the registry: %s at %s", worker.worker_id, ", ".join(worker.models), worker.url
    )


def _log_left(worker: WorkerInfo, how: str, level: int = logging.INFO) -> None:
    logger.log(level, "worker %s (%s) %s", worker.worker_id, ", ".join(worker.models), how)


def _log_changes(before: list[WorkerInfo], after: list[WorkerInfo]) -> None:
    """Read from Redis, a worker that stopped cleanly and one that went silent look alike: both are gone."""
    before_ids = {w.worker_id for w in before}
    after_ids = {w.worker_id for w in after}
    for worker in after:
        if worker.worker_id not in before_ids:
            _log_joined(worker)
    for worker in before:
        if worker.worker_id not in after_ids:
            _log_left(worker, "dropped out of the registry (stopped, or silent past its TTL)")


async def get_worker_registry(connection: HTTPConnection) -> WorkerRegistry:
    return connection.app.state.platform.registry


WorkerRegistryDep = Annotated[WorkerRegistry, Depends(get_worker_registry)]
