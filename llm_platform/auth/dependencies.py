"""Auth's FastAPI dependencies, typed once with Annotated so routes read like sentences: who is calling
(the principal of a credential), the role or scope a route needs, the tenant a route names and whether the
caller may act in it, and the components a login needs.

The model endpoints (llm_platform/chat) call authenticate_request, check_inference, inference_tenant and
credential_tenant directly, one dependency of theirs instead of a tree of these: FastAPI solves each
dependency of a tree at a cost, on the hottest path. Every dependency here is `async def`, even those
that never await: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per dependency
per request for nothing.

The process's components (session factory, settings, key cache...) are read from
`connection.app.state.platform`, where the app's lifespan keeps them (the shell's PlatformState names the
fields).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from passlib.context import CryptContext
from starlette.requests import HTTPConnection

from llm_platform.audit.context import audit_context
from llm_platform.auth import service as auth_service
from llm_platform.auth.principal import Principal
from llm_platform.auth.throttle import LoginThrottle
from llm_platform.core.db import SessionDep
from llm_platform.core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from tenants import service as tenant_service
from tenants.models import ApiKeyScope, Tenant
from tenants.ref import TenantRef

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
    platform = connection.app.state.platform
    principal = await auth_service.authenticate(
        platform.session_factory, platform.settings, credential, platform.key_cache
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
    request: Request, principal: InferenceDep, tenant: TenantSlugPath
) -> TenantRef:
    return await inference_tenant(request, principal, tenant)


async def inference_tenant(connection: HTTPConnection, principal: Principal, slug: str) -> TenantRef:
    """The tenant named in the path, for model calls (over HTTP or a WebSocket) and conversations: the
    caller's own (taken from its credential, no query: this is the hot path), or any tenant for a
    platform admin. Another tenant's answers 404 exactly as a missing one does."""
    if principal.tenant_id is not None and principal.tenant_slug == slug:
        found = TenantRef(principal.tenant_id, slug)
    elif principal.is_platform_admin and (row := await _find_tenant(connection, slug)):
        found = TenantRef.of(row)
    else:
        raise NotFound("Not found")
    audit_context(connection.scope).tenant_id = found.id
    return found


InferenceTenantDep = Annotated[TenantRef, Depends(get_inference_tenant)]


async def _find_tenant(connection: HTTPConnection, slug: str) -> Tenant | None:
    async with connection.app.state.platform.session_factory() as session:
        return await tenant_service.find_tenant(session, slug)


async def get_passwords(connection: HTTPConnection) -> CryptContext:
    return connection.app.state.platform.passwords


PasswordsDep = Annotated[CryptContext, Depends(get_passwords)]


async def get_login_throttle(connection: HTTPConnection) -> LoginThrottle:
    return connection.app.state.platform.login_throttle


LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]
