"""The model catalogue: registering models and deciding which a tenant may use. No HTTP here."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.db import save_unique, utcnow
from llm_platform.errors import Conflict, NotFound
from models_registry.models import Model
from tenants.models import TenantLimits


def model_not_found(name: str) -> NotFound:
    # The same answer for a model that does not exist, is disabled, or is not allowed: as OpenAI does.
    return NotFound(
        f"The model '{name}' does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


async def register_model(session: AsyncSession, values: dict[str, object]) -> Model:
    model = Model(**values)
    session.add(model)
    await save_unique(
        session,
        Conflict(f"A model named '{values['name']}' already exists", code="model_exists", param="name"),
    )
    return model


async def list_models(session: AsyncSession) -> list[Model]:
    return list(await session.scalars(select(Model).order_by(Model.name)))


async def get_model(session: AsyncSession, name: str) -> Model:
    model = await session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise NotFound(f"Model '{name}' not found", code="model_not_found", param="model")
    return model


async def update_model(session: AsyncSession, name: str, values: dict[str, object]) -> Model:
    model = await get_model(session, name)
    for field, value in values.items():
        setattr(model, field, value)
    model.updated_at = utcnow()
    await session.commit()
    return model


async def _tenant_models_query(session: AsyncSession, tenant_id: uuid.UUID) -> Select[tuple[Model]]:
    allowed = await session.scalar(
        select(TenantLimits.allowed_models).where(TenantLimits.tenant_id == tenant_id)
    )
    query = select(Model).where(Model.enabled.is_(True)).order_by(Model.name)
    return query if allowed is None else query.where(Model.name.in_(allowed))


async def models_for_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> list[Model]:
    """Enabled models the tenant may use (its allowed-models list; none set means every model)."""
    return list(await session.scalars(await _tenant_models_query(session, tenant_id)))


async def model_for_tenant(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> Model:
    """The model a tenant asked for, or 404 model_not_found if it may not use it."""
    query = await _tenant_models_query(session, tenant_id)
    model = await session.scalar(query.where(Model.name == name))
    if model is None:
        raise model_not_found(name)
    return model
