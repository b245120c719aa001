"""`/auth`: login (OAuth2 password flow), refresh, logout, and `GET /auth/me`. A browser may keep the
refresh token in an HttpOnly cookie instead of the body (auth/refresh_cookie.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response, status

from llm_platform.audit.context import AuditContext, audit_context
from llm_platform.auth import service
from llm_platform.auth.dependencies import LoginThrottleDep, PasswordsDep, PrincipalDep
from llm_platform.auth.refresh_cookie import clear_refresh_cookie, refresh_token_of, set_refresh_cookie
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
    response: Response,
    tenant: Annotated[
        str | None, Form(description="Tenant slug; omit for a platform admin", max_length=63)
    ] = None,
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
    refresh_cookie: Annotated[
        bool, Form(description="Set the refresh token as an HttpOnly cookie (for browsers), not in the body")
    ] = False,
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
    if refresh_cookie:
        set_refresh_cookie(response, request, pair.refresh_token, settings.refresh_token_ttl_s)
    return _issued(pair, audit, in_body=not refresh_cookie)


@router.post("/refresh", responses=errors(401, 403, 503))  # 403: a cookie without the CSRF header
async def refresh_token(
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    body: RefreshRequest | None = None,  # none: the cookie's
) -> TokenResponse:
    token, from_cookie = refresh_token_of(request, body.refresh_token if body else None)
    pair = await service.refresh(session, settings, token)
    if from_cookie:
        set_refresh_cookie(response, request, pair.refresh_token, settings.refresh_token_ttl_s)
    return _issued(pair, audit_context(request.scope), in_body=not from_cookie)


def _issued(pair: service.TokenPair, audit: AuditContext, *, in_body: bool) -> TokenResponse:
    audit.actor_kind, audit.actor_id, audit.tenant_id = "user", pair.user_id, pair.tenant_id
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token if in_body else None,
        expires_in=pair.expires_in,
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 403, 503))
async def logout(session: SessionDep, request: Request, body: RefreshRequest | None = None) -> Response:
    token, from_cookie = refresh_token_of(request, body.refresh_token if body else None)
    await service.logout(session, token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    if from_cookie:
        clear_refresh_cookie(response, request)
    return response


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
