"""Liveness and readiness probes for Kubernetes."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from llm_platform.state import StateDep

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and serving; says nothing of its dependencies."""
    return {"status": "ok"}


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    # database, redis (when configured): ok or unreachable; workers: ok, missing (an enabled model we
    # serve has no live worker) or unknown (the registry or catalogue could not be read).
    checks: dict[str, Literal["ok", "unreachable", "missing", "unknown"]]
    workers: int | None  # live model workers; None when the registry cannot be read
    models_without_workers: list[str]  # enabled hf models with no live worker


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
    live worker (unless LLMP_READY_REQUIRES_WORKERS is off: then missing workers are only reported);
    503 names what is not."""
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
    # A model we serve (backend hf) with no live worker answers 503 model_unavailable: not ready. The
    # API's other endpoints work meanwhile; the body says which model lacks a worker.
    workers: int | None = None
    missing: list[str] = []
    if checks["database"] == "ok":
        try:
            live = await state.registry.live_workers()
            workers = len(live)
            served = {model for worker in live for model in worker.models}
            missing = [
                entry.name
                for entry in await state.catalogue.enabled_models()
                if entry.served_by_workers and entry.name not in served
            ]
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
    }
    return JSONResponse(body, status_code=200 if ready else 503)
