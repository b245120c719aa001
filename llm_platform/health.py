"""Liveness and readiness probes for Kubernetes, and the worker pool as both /readyz and /metrics
report it."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from llm_platform.state import PlatformState, StateDep
from models_registry.worker.protocol import READY, WorkerInfo

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and serving; says nothing of its dependencies."""
    return {"status": "ok"}


class WorkerStatus(BaseModel):
    worker_id: str
    # starting: loading its model or warming up (not sent work yet); ready: serving.
    state: Literal["starting", "ready"]
    load: int  # running + waiting sequences at its last heartbeat
    capacity: int


class ModelWorkers(BaseModel):
    status: Literal["ok", "missing"]  # missing: no worker of this model is ready
    workers: list[WorkerStatus]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    # database, redis (when configured): ok or unreachable; workers: ok, missing (an enabled model we
    # serve has no ready worker) or unknown (the registry or catalogue could not be read).
    checks: dict[str, Literal["ok", "unreachable", "missing", "unknown"]]
    workers: int | None  # live model workers, ready or not; None when the registry cannot be read
    models_without_workers: list[str]  # enabled hf models with no ready worker
    models: dict[str, ModelWorkers]  # each enabled hf model: its live workers and their state


async def worker_pool(state: PlatformState) -> tuple[list[WorkerInfo], dict[str, list[WorkerInfo]]]:
    """The live workers, and those of each enabled model we serve (an empty list: it has none)."""
    live = await state.registry.live_workers()
    served = [entry.name for entry in await state.catalogue.enabled_models() if entry.served_by_workers]
    return live, {name: [worker for worker in live if name in worker.models] for name in served}


@router.get(
    "/readyz",
    response_model=None,
    responses={
        200: {"model": Readiness},
        503: {"model": Readiness, "description": "Not ready: `checks` names what is not"},
    },
)
async def readyz(state: StateDep) -> JSONResponse:
    """Ready when the database (and Redis, when configured) answer and every enabled model we serve has a
    ready worker, one that has loaded and warmed up its model (unless LLMP_READY_REQUIRES_WORKERS is off:
    then missing workers are only reported); 503 names what is not."""
    checks: dict[str, str] = {}
    try:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:
        logger.warning("readiness: database unreachable", exc_info=True)
        checks["database"] = "unreachable"
    if state.redis is not None:
        try:
            checks["redis"] = "ok" if await state.redis.ping() else "unreachable"
        except Exception:
            logger.warning("readiness: redis unreachable", exc_info=True)
            checks["redis"] = "unreachable"
    # A model we serve (backend hf) with no ready worker answers 503 model_unavailable: not ready. The
    # API's other endpoints work meanwhile; the body says which model lacks a worker.
    workers: int | None = None
    missing: list[str] = []
    models: dict[str, dict] = {}
    if checks["database"] == "ok":
        try:
            live, by_model = await worker_pool(state)
            workers = len(live)
            for name, serving in by_model.items():
                ready = any(worker.state == READY for worker in serving)
                if not ready:
                    missing.append(name)
                models[name] = {
                    "status": "ok" if ready else "missing",
                    "workers": [
                        {"worker_id": w.worker_id, "state": w.state, "load": w.load, "capacity": w.capacity}
                        for w in serving
                    ],
                }
            checks["workers"] = "missing" if missing else "ok"
        except Exception:
            logger.warning("readiness: the worker registry or catalogue is unreadable", exc_info=True)
            checks["workers"] = "unknown"
    required = checks if state.settings.ready_requires_workers else checks.keys() - {"workers"}
    ready = all(checks[name] == "ok" for name in required)
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": checks,
        "workers": workers,
        "models_without_workers": missing,
        "models": models,
    }
    return JSONResponse(body, status_code=200 if ready else 503)
