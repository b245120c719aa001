"""The live worker registry: who serves which model, how loaded, last heard from when.

A worker entry expires a few heartbeats after the worker goes quiet, so a dead worker drops out by
itself. With Redis, workers write their own entries (a key with a TTL) and every API replica reads
them; in embedded mode the API keeps an in-process registry that workers report to over HTTP.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_KEY_PREFIX = "llmp:workers:"


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    url: str
    models: tuple[str, ...]
    capacity: int
    load: int  # running + waiting sequences at the last heartbeat
    heartbeat_at: float  # unix time

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerInfo:
        data = json.loads(raw)
        data["models"] = tuple(data["models"])
        return cls(**data)


class WorkerRegistry(Protocol):
    async def heartbeat(self, worker: WorkerInfo) -> None: ...

    async def remove(self, worker_id: str) -> None: ...

    async def live_workers(self, model: str | None = None) -> list[WorkerInfo]: ...


class InProcessWorkerRegistry:
    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._workers: dict[str, WorkerInfo] = {}

    async def heartbeat(self, worker: WorkerInfo) -> None:
        self._workers[worker.worker_id] = worker

    async def remove(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def live_workers(self, model: str | None = None) -> list[WorkerInfo]:
        now = time.time()
        for worker_id in [w.worker_id for w in self._workers.values() if now - w.heartbeat_at > self._ttl_s]:
            del self._workers[worker_id]
        return [w for w in self._workers.values() if model is None or model in w.models]


class RedisWorkerRegistry:
    def __init__(self, redis: Redis, ttl_s: float) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl_s * 1000)
        self._last_seen: list[WorkerInfo] = []

    async def heartbeat(self, worker: WorkerInfo) -> None:
        await self._redis.set(_KEY_PREFIX + worker.worker_id, worker.to_json(), px=self._ttl_ms)

    async def remove(self, worker_id: str) -> None:
        await self._redis.delete(_KEY_PREFIX + worker_id)

    async def live_workers(self, model: str | None = None) -> list[WorkerInfo]:
        try:
            keys = [key async for key in self._redis.scan_iter(match=_KEY_PREFIX + "*", count=500)]
            raws = await self._redis.mget(keys) if keys else []
            self._last_seen = [WorkerInfo.from_json(raw) for raw in raws if raw is not None]
        except (RedisError, OSError) as exc:
            # Workers outlive a Redis outage; the last list we read keeps requests flowing (a worker that
            # died meanwhile fails its request, which dispatch retries elsewhere).
            logger.warning("worker registry unreadable (Redis: %s); using the last known workers", exc)
        return [w for w in self._last_seen if model is None or model in w.models]
