"""Liveness and readiness probes for Kubernetes."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from llm_platform.dependencies import StateDep

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and serving; says nothing of its dependencies."""
    return {"status": "ok"}


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, Literal["ok", "unreachable"]]
    workers: int | None  # live model workers; None when the registry cannot be read


@router.get(
    "/readyz",
    response_model=None,
    responses={
        200: {"model": Readiness},
        503: {"model": Readiness, "description": "Not ready: `checks` names what is unreachable"},
    },
)
async def readyz(state: StateDep) -> JSONResponse:
    """Ready when the database (and Redis, when configured) answer; 503 names what does not."""
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
    ready = all(value == "ok" for value in checks.values())
    # Workers are reported, not required: the API serves its admin and auth endpoints without any.
    try:
        workers: int | None = len(await state.registry.live_workers())
    except Exception:
        workers = None
    body = {"status": "ready" if ready else "unavailable", "checks": checks, "workers": workers}
    return JSONResponse(body, status_code=200 if ready else 503)
