"""A worker's heartbeat: its entry in the registry, refreshed every few seconds with its load."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import httpx
from redis.asyncio import Redis

from llm_platform.core.settings import Settings
from models_registry.worker.protocol import (
    READY,
    REGISTER_PATH,
    STARTING,
    WorkerInfo,
    remove_worker_entry,
    write_worker_entry,
)

logger = logging.getLogger(__name__)


class HeartbeatSender:
    """Writes to Redis when the platform has one, else reports to the API's in-process registry."""

    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        url: str,
        models: tuple[str, ...],
        load: Callable[[], dict[str, int]],
    ) -> None:
        self._settings = settings
        self._worker_id = worker_id
        self._url = url
        self._models = models
        self._load = load
        self._task: asyncio.Task[None] | None = None
        self._redis: Redis | None = None
        self._http: httpx.AsyncClient | None = None
        self._state = STARTING

    def _info(self) -> WorkerInfo:
        load = self._load()
        return WorkerInfo(
            worker_id=self._worker_id,
            url=self._url,
            models=self._models,
            capacity=load["capacity"],
            load=load["running"] + load["waiting"],
            heartbeat_at=time.time(),
            state=self._state,
            waiting=load["waiting"],
        )

    async def start(self) -> None:
        if self._settings.redis_url:
            self._redis = Redis.from_url(self._settings.redis_url)
        else:
            self._http = httpx.AsyncClient(
                base_url=self._settings.resolved_registry_url,
                headers={"Authorization": f"Bearer {self._settings.resolved_worker_secret}"},
                timeout=5.0,
            )
        self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def ready(self) -> None:
        """The model is loaded and warmed up: said at once, not at the next beat, so work comes sooner."""
        self._state = READY
        try:
            await self._beat()
        except Exception as exc:  # the regular beats keep trying
            logger.warning("heartbeat failed: %s", exc)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):  # leaving early is a courtesy; the TTL does it anyway
            if self._redis:
                await remove_worker_entry(self._redis, self._worker_id)
            elif self._http:
                await self._http.delete(f"{REGISTER_PATH}/{self._worker_id}")
        if self._redis:
            await self._redis.aclose()
        if self._http:
            await self._http.aclose()

    async def _run(self) -> None:
        while True:
            try:
                await self._beat()
            except Exception as exc:  # the registry may be down (or not up yet); keep trying
                logger.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(self._settings.worker_heartbeat_s)

    async def _beat(self) -> None:
        info = self._info()
        if self._redis:
            await write_worker_entry(self._redis, info, self._settings.worker_ttl_s)
        elif self._http:
            response = await self._http.post(
                REGISTER_PATH, content=info.to_json(), headers={"Content-Type": "application/json"}
            )
            response.raise_for_status()
