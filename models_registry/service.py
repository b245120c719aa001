"""The model catalogue: registering models and deciding which a tenant may use. No HTTP here; CatalogueDep
only hands a route this process's catalogue."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from llm_platform.core.db import assign, save_unique, utcnow
from llm_platform.core.errors import Conflict, NotFound, Unprocessable
from llm_platform.core.refreshing_cache import RefreshingCache
from models_registry.models import Model, ModelBackend, ModelKind
from tenants.policy import TenantPolicies


def model_not_found(name: str) -> NotFound:
    # The same answer for a model that does not exist, is disabled, or is not allowed: as OpenAI does.
    return NotFound(
        f"The model '{name}' does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def check_model(
    backend: str, base_url: str | None, context_length: int, default_params: Mapping[str, object] | None
) -> None:
    """What a catalogue row must keep true, on registration and after any update."""
    if (backend == ModelBackend.openai) != (base_url is not None):
        raise Unprocessable("base_url is required for backend 'openai' and only for it", param="base_url")
    max_tokens = (default_params or {}).get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > context_length:
        raise Unprocessable(
            f"default_params.max_tokens ({max_tokens}) is above context_length ({context_length})",
            param="default_params.max_tokens",
        )


async def register_model(
    session: AsyncSession, values: dict[str, Any], *, catalogue: Catalogue | None
) -> Model:
    """Adds a model; `catalogue` (None for a caller that holds none) lists it from the next request."""
    # Callers outside HTTP (the CLI, tests) may leave out what the schema defaults.
    check_model(
        values["backend"], values.get("base_url"), values["context_length"], values.get("default_params")
    )
    model = Model(**values)
    session.add(model)
    await save_unique(
        session,
        Conflict(f"A model named '{values['name']}' already exists", code="model_exists", param="name"),
    )
    if catalogue is not None:
        catalogue.forget()
    return model


async def list_models(session: AsyncSession) -> list[Model]:
    return list(await session.scalars(select(Model).order_by(Model.name)))


async def get_model(session: AsyncSession, name: str) -> Model:
    model = await session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise NotFound(f"Model '{name}' not found", code="model_not_found", param="model")
    return model


async def update_model(
    session: AsyncSession, name: str, values: dict[str, Any], *, catalogue: Catalogue | None
) -> Model:
    """Changes the fields given, if the row they make keeps check_model's rules (else nothing changes).
    `catalogue` (None for a caller that holds none) serves the change from the next request."""
    model = await get_model(session, name)
    merged = {
        field: values.get(field, getattr(model, field))
        for field in ("base_url", "context_length", "default_params")
    }
    check_model(model.backend, **merged)
    assign(model, values)
    model.updated_at = utcnow()
    await session.commit()
    if catalogue is not None:  # after the commit: a reload must not read the old row
        catalogue.forget()
    return model


@dataclass(frozen=True)
class CatalogueEntry:
    """What the request path needs of a model, detached from any session."""

    name: str
    kind: ModelKind
    backend: ModelBackend
    source: str
    base_url: str | None
    context_length: int
    default_params: dict[str, object]
    created_at: datetime

    @property
    def served_by_workers(self) -> bool:
        """Served by a worker of ours (transformers), not an upstream server: a worker must be running."""
        return self.backend is ModelBackend.hf


class Catalogue:
    """The enabled models, cached per process for a second, and which a tenant may use.

    A name not in the cache re-reads the catalogue at once, so a new model is usable immediately; a
    disabled or changed one takes effect within TTL_S (at once in the process whose catalogue was given
    to register_model or update_model).
    """

    TTL_S = 1.0

    def __init__(self, policies: TenantPolicies, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._policies = policies
        self._sessions = sessions  # a session of its own, only to load: most requests need none
        self._cache: RefreshingCache[None, dict[str, CatalogueEntry]] = RefreshingCache(
            self._load, self.TTL_S, "catalogue"
        )

    async def model_for(self, tenant_id: uuid.UUID, name: str) -> CatalogueEntry:
        """The model a tenant asked for, or 404 model_not_found if it may not use it."""
        allowed = (await self._policies.get(tenant_id)).allowed_models
        if allowed is not None and name not in allowed:
            raise model_not_found(name)
        entry = (await self._cache.get(None)).get(name)
        if entry is None:  # perhaps added a moment ago
            entry = (await self._cache.reload(None)).get(name)
        if entry is None:
            raise model_not_found(name)
        return entry

    async def models_for(self, tenant_id: uuid.UUID) -> list[CatalogueEntry]:
        """Enabled models the tenant may use (its allowed-models list; none set means every model)."""
        allowed = (await self._policies.get(tenant_id)).allowed_models
        entries = (await self._cache.get(None)).values()
        return sorted((e for e in entries if allowed is None or e.name in allowed), key=lambda e: e.name)

    async def enabled_models(self) -> list[CatalogueEntry]:
        return sorted((await self._cache.get(None)).values(), key=lambda e: e.name)

    def forget(self) -> None:
        self._cache.forget()

    async def _load(self, _: None) -> dict[str, CatalogueEntry]:
        async with self._sessions() as session:
            return await load_enabled(session)


async def load_enabled(session: AsyncSession) -> dict[str, CatalogueEntry]:
    """The enabled models by name: what the catalogue caches, and what `llmp serve` starts workers for
    (those `served_by_workers`)."""
    rows = (await session.scalars(select(Model).where(Model.enabled.is_(True)))).all()
    return {
        model.name: CatalogueEntry(
            model.name,
            model.kind,
            model.backend,
            model.source,
            model.base_url,
            model.context_length,
            dict(model.default_params or {}),
            model.created_at,
        )
        for model in rows
    }


async def get_catalogue(connection: HTTPConnection) -> Catalogue:
    return connection.app.state.platform.catalogue


CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
