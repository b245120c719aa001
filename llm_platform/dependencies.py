"""FastAPI dependencies, typed once with Annotated so routers read like sentences.

Even those that never await are `async def`: FastAPI runs a plain `def` dependency in its thread pool,
a thread hop per dependency per request (~5% of a chat request's CPU) for nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from passlib.context import CryptContext
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from llm_platform.audit.context import audit_context
from llm_platform.auth import service as auth_service
from llm_platform.auth.principal import Principal
from llm_platform.core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from llm_platform.core.settings import Settings
from llm_platform.state import PlatformState
from models_registry.service import Catalogue
from tenants import service as tenant_service
from tenants.caches import AdminCaches
from tenants.models import ApiKeyScope, Tenant
from tenants.ref import TenantRef


async def get_state(request: Request) -> PlatformState:
    return request.app.state.platform


StateDep = Annotated[PlatformState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_passwords(state: StateDep) -> CryptContext:
    return state.passwords


PasswordsDep = Annotated[CryptContext, Depends(get_passwords)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.session_factory() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_admin_caches(state: StateDep) -> AdminCaches:
    return state.admin_caches


AdminCachesDep = Annotated[AdminCaches, Depends(get_admin_caches)]


async def get_catalogue(state: StateDep) -> Catalogue:
    return state.catalogue


CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]

_bearer = HTTPBearer(auto_error=False, description="A JWT from /auth/token, or an API key `sk-...`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key `sk-...`")


async def get_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """Authenticates the caller from `Authorization: Bearer` (JWT or API key) or `X-API-Key`."""
    return await authenticate_credential(request, bearer.credentials if bearer else api_key)


async def authenticate_request(request: Request) -> Principal:
    """get_principal for the model endpoints, called directly rather than as a tree of dependencies
    (the same security schemes read the headers): see llm_platform/chat/dependencies.py."""
    bearer = await _bearer(request)
    credential = bearer.credentials if bearer else await _api_key_header(request)
    return await authenticate_credential(request, credential)


async def authenticate_credential(connection: HTTPConnection, credential: str | None) -> Principal:
    """The principal a JWT or API key stands for, named as the actor of the connection's audit row.
    Whatever carried the credential: a header, or a WebSocket's token."""
    if not credential:
        raise Unauthorized("Missing credentials: send `Authorization: Bearer <token or key>` or `X-API-Key`")
    state: PlatformState = connection.app.state.platform
    principal = await auth_service.authenticate(
        state.session_factory, state.settings, credential, state.key_cache
    )
    audit_context(connection.scope).identify(principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_platform_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_platform_admin:
        raise Forbidden("This action needs a platform admin")
    return principal


PlatformAdminDep = Annotated[Principal, Depends(require_platform_admin)]

TenantSlugPath = Annotated[str, Path(description="The tenant's slug")]


async def get_tenant(
    request: Request, session: SessionDep, principal: PrincipalDep, tenant: TenantSlugPath
) -> Tenant:
    """The tenant named in the path, if the caller belongs to it (or is a platform admin).

    Another tenant's resources answer 404 exactly as missing ones do, so tenants cannot be enumerated.
    """
    if not principal.is_platform_admin and principal.tenant_slug != tenant:
        raise NotFound("Not found")
    if principal.tenant_id is not None:
        found = await session.get(Tenant, principal.tenant_id)
    else:
        found = await tenant_service.find_tenant(session, tenant)
    if found is None:
        raise NotFound("Not found")
    audit_context(request.scope).tenant_id = found.id  # a platform admin's action lands in the tenant's log
    return found


TenantDep = Annotated[Tenant, Depends(get_tenant)]


async def require_tenant_admin(principal: PrincipalDep, tenant: TenantDep) -> Principal:
    if not principal.can_administer_tenant:
        raise Forbidden("This action needs a tenant admin (or an API key with the `admin` scope)")
    return principal


TenantAdminDep = Annotated[Principal, Depends(require_tenant_admin)]


async def require_inference(principal: PrincipalDep) -> Principal:
    return check_inference(principal)


def check_inference(principal: Principal) -> Principal:
    if principal.kind == "api_key" and ApiKeyScope.inference.value not in principal.scopes:
        raise Forbidden("This API key lacks the `inference` scope", code="missing_scope")
    return principal


InferenceDep = Annotated[Principal, Depends(require_inference)]


async def get_credential_tenant(principal: InferenceDep) -> TenantRef:
    return credential_tenant(principal)


def credential_tenant(principal: Principal) -> TenantRef:
    """The tenant of the credential, for the tenant-less OpenAI paths (/v1/...): no query, since
    authentication already checked it (a suspended tenant's credentials are refused)."""
    if principal.tenant_id is None or principal.tenant_slug is None:
        raise BadRequest(
            "Platform admins belong to no tenant: use /{tenant}/v1/... to act for one", code="tenant_required"
        )
    return TenantRef(principal.tenant_id, principal.tenant_slug)


CredentialTenantDep = Annotated[TenantRef, Depends(get_credential_tenant)]


async def get_inference_tenant(
    request: Request, state: StateDep, principal: InferenceDep, tenant: TenantSlugPath
) -> TenantRef:
    return await inference_tenant(request, state, principal, tenant)


async def inference_tenant(
    request: HTTPConnection, state: PlatformState, principal: Principal, slug: str
) -> TenantRef:
    """The tenant named in the path, for model calls (over HTTP or a WebSocket) and conversations: the
    caller's own (taken from its credential, no query: this is the hot path), or any tenant for a
    platform admin. Another tenant's answers 404 exactly as a missing one does."""
    if principal.tenant_id is not None and principal.tenant_slug == slug:
        found = TenantRef(principal.tenant_id, slug)
    elif principal.is_platform_admin and (row := await _find_tenant(state, slug)):
        found = TenantRef.of(row)
    else:
        raise NotFound("Not found")
    audit_context(request.scope).tenant_id = found.id
    return found


InferenceTenantDep = Annotated[TenantRef, Depends(get_inference_tenant)]


async def _find_tenant(state: PlatformState, slug: str) -> Tenant | None:
    async with state.session_factory() as session:
        return await tenant_service.find_tenant(session, slug)


async def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


ClientAddressDep = Annotated[str, Depends(client_address)]


def asks_for_fresh_answer(request: Request) -> bool:
    """`Cache-Control: no-cache` (or no-store) asks for a freshly generated answer, not a cached one."""
    directives = request.headers.get("cache-control", "").lower()
    return "no-cache" in directives or "no-store" in directives


async def sync_usage(state: StateDep) -> None:
    """This process's pending usage increments are written before a report reads the ledger."""
    # A failure is logged by the writer; the report is then a moment behind, never an error.
    with contextlib.suppress(Exception):
        await state.usage.flush()


UsageSyncedDep = Annotated[None, Depends(sync_usage)]
