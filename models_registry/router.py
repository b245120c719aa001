"""Catalogue API: platform admins manage models; a tenant's members list what they may use."""

from __future__ import annotations

from fastapi import APIRouter, status

from llm_platform.dependencies import PlatformAdminDep, SessionDep, StateDep, TenantDep
from llm_platform.openapi import errors
from models_registry import service
from models_registry.schemas import ModelCreate, ModelOut, ModelUpdate, TenantModelOut

admin_router = APIRouter(prefix="/admin/models", tags=["models (platform admin)"])
tenant_router = APIRouter(prefix="/{tenant}", tags=["models"])


@admin_router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409))
async def register_model(
    body: ModelCreate, session: SessionDep, state: StateDep, _: PlatformAdminDep
) -> ModelOut:
    model = ModelOut.model_validate(await service.register_model(session, body.model_dump(mode="json")))
    state.catalogue.forget()
    return model


@admin_router.get("")
async def list_models(session: SessionDep, _: PlatformAdminDep) -> list[ModelOut]:
    return [ModelOut.model_validate(model) for model in await service.list_models(session)]


@admin_router.get("/{name:path}")
async def get_model(name: str, session: SessionDep, _: PlatformAdminDep) -> ModelOut:
    return ModelOut.model_validate(await service.get_model(session, name))


@admin_router.patch("/{name:path}")
async def update_model(
    name: str, body: ModelUpdate, session: SessionDep, state: StateDep, _: PlatformAdminDep
) -> ModelOut:
    values = body.model_dump(mode="json", exclude_unset=True)
    model = ModelOut.model_validate(await service.update_model(session, name, values))
    state.catalogue.forget()  # other replicas follow within a second
    return model


@tenant_router.get("/models")
async def tenant_models(tenant: TenantDep, state: StateDep) -> list[TenantModelOut]:
    return [TenantModelOut.model_validate(model) for model in await state.catalogue.models_for(tenant.id)]
