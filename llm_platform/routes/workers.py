"""`/internal/workers`: where workers report in embedded mode (no Redis), the API's in-process registry,
behind the worker secret."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from llm_platform.audit.context import audit_context
from llm_platform.core.errors import Unauthorized
from llm_platform.core.settings import SettingsDep
from models_registry.registry import WorkerRegistryDep
from models_registry.worker.protocol import REGISTER_PATH, WorkerInfo

router = APIRouter(prefix=REGISTER_PATH, include_in_schema=False)


async def _worker_secret(request: Request, settings: SettingsDep) -> None:
    supplied = request.headers.get("authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(supplied.encode(), settings.resolved_worker_secret.encode()):
        raise Unauthorized("Bad worker secret")
    # Heartbeats arrive every LLMP_WORKER_HEARTBEAT_S per worker: rows of them would crowd the platform
    # chain. A request with a bad secret is still audited (someone is probing the internal API).
    audit_context(request.scope).audited = False


WorkerAuth = Annotated[None, Depends(_worker_secret)]


@router.post("", status_code=status.HTTP_204_NO_CONTENT)
async def heartbeat(request: Request, registry: WorkerRegistryDep, _: WorkerAuth) -> Response:
    await registry.heartbeat(WorkerInfo.from_json(await request.body()))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{worker_id}", status_code=status.HTTP_204_NO_CONTENT)
async def deregister(worker_id: str, registry: WorkerRegistryDep, _: WorkerAuth) -> Response:
    await registry.remove(worker_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
