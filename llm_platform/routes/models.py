"""The catalogue's routes: platform admins manage models (`/admin/models`) and see the live workers
serving them (`/admin/workers`); a tenant's members list what they may use (`/{tenant}/models`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from llm_platform.auth.dependencies import PlatformAdminDep, TenantDep
from llm_platform.core.db import SessionDep
from llm_platform.core.openapi_errors import errors
from models_registry import pool, service
from models_registry.registry import WorkerRegistryDep
from models_registry.schemas import ModelCreate, ModelOut, ModelUpdate, TenantModelOut, WorkerOut
from models_registry.service import CatalogueDep

admin_router = APIRouter(prefix="/admin/models", tags=["models (platform admin)"])
workers_router = APIRouter(prefix="/admin/workers", tags=["models (platform admin)"])
tenant_router = APIRouter(prefix="/{tenant}", tags=["models"])


@admin_router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409))
async def register_model(
    body: ModelCreate, session: SessionDep, catalogue: CatalogueDep, _: PlatformAdminDep
) -> ModelOut:
    model = await service.register_model(session, body.model_dump(mode="json"), catalogue=catalogue)
    return ModelOut.model_validate(model)


@admin_router.get("")
async def list_models(session: SessionDep, _: PlatformAdminDep) -> list[ModelOut]:
    return [ModelOut.model_validate(model) for model in await service.list_models(session)]


@admin_router.get("/{name:path}")
async def get_model(name: str, session: SessionDep, _: PlatformAdminDep) -> ModelOut:
    return ModelOut.model_validate(await service.get_model(session, name))


@admin_router.patch("/{name:path}")
async def update_model(
    name: str, body: ModelUpdate, session: SessionDep, catalogue: CatalogueDep, _: PlatformAdminDep
) -> ModelOut:
    values = body.model_dump(mode="json", exclude_unset=True)
    return ModelOut.model_validate(await service.update_model(session, name, values, catalogue=catalogue))


@workers_router.get("")
async def list_workers(
    registry: WorkerRegistryDep,
    _: PlatformAdminDep,
    model: Annotated[str | None, Query(max_length=200, description="Only the workers of this model")] = None,
) -> list[WorkerOut]:
    """The live model workers: each one's models, state, load, queue and last heartbeat, and its URL
    (internal topology: for platform admins only). A worker drops out a few heartbeats after it stops."""
    return await pool.list_workers(registry, model)


@tenant_router.get("/models")
async def tenant_models(tenant: TenantDep, catalogue: CatalogueDep) -> list[TenantModelOut]:
    return [TenantModelOut.model_validate(model) for model in await catalogue.models_for(tenant.id)]
