"""`/auth`: login (OAuth2 password flow), refresh, logout, and `GET /auth/me`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response, status

from llm_platform.audit.context import AuditContext, audit_context
from llm_platform.auth import service
from llm_platform.auth.dependencies import LoginThrottleDep, PasswordsDep, PrincipalDep
from llm_platform.auth.schemas import PrincipalOut, RefreshRequest, TokenResponse
from llm_platform.core.db import SessionDep
from llm_platform.core.openapi_errors import errors
from llm_platform.core.settings import SettingsDep

router = APIRouter(prefix="/auth", tags=["auth"])


async def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


ClientAddressDep = Annotated[str, Depends(client_address)]


@router.post("/token", responses=errors(401, 403, 429, 503))  # 429: login throttling
async def issue_token(
    username: Annotated[str, Form(description="The user's email", max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    session: SessionDep,
    settings: SettingsDep,
    passwords: PasswordsDep,
    throttle: LoginThrottleDep,
    address: ClientAddressDep,
    request: Request,
    tenant: Annotated[
        str | None, Form(description="Tenant slug; omit for a platform admin", max_length=63)
    ] = None,
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
) -> TokenResponse:
    audit = audit_context(request.scope)
    audit.resource = f"account {tenant or '-'}:{username.strip().lower()}"  # failures too: whose login
    pair = await service.login(
        session,
        settings,
        passwords,
        throttle,
        tenant_slug=tenant,
        email=username,
        password=password,
        client_address=address,
    )
    return _issued(pair, audit)


@router.post("/refresh", responses=errors(401, 403, 503))
async def refresh_token(
    body: RefreshRequest, session: SessionDep, settings: SettingsDep, request: Request
) -> TokenResponse:
    pair = await service.refresh(session, settings, body.refresh_token)
    return _issued(pair, audit_context(request.scope))


def _issued(pair: service.TokenPair, audit: AuditContext) -> TokenResponse:
    audit.actor_kind, audit.actor_id, audit.tenant_id = "user", pair.user_id, pair.tenant_id
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 503))
async def logout(body: RefreshRequest, session: SessionDep) -> Response:
    await service.logout(session, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me")
async def me(principal: PrincipalDep) -> PrincipalOut:
    return PrincipalOut(
        kind=principal.kind,
        id=principal.id,
        tenant=principal.tenant_slug,
        role=principal.role.value if principal.role else None,
        email=principal.email,
        scopes=list(principal.scopes) if principal.kind == "api_key" else None,
        api_key_prefix=principal.api_key_prefix,
    )
