"""`/admin/tenants` and `/{tenant}/admin/...`: platform admins manage tenants and their limits; tenant admins
manage their tenant's users, API keys and settings."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from llm_platform.auth.dependencies import PasswordsDep, PlatformAdminDep, TenantAdminDep, TenantDep
from llm_platform.core.db import SessionDep
from llm_platform.core.openapi_errors import errors
from llm_platform.core.settings import SettingsDep
from tenants import service
from tenants.caches import AdminCachesDep
from tenants.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    KeyLimits,
    KeyLimitsPatch,
    KeyLimitsReplace,
    LimitsOut,
    LimitsPatch,
    LimitsReplace,
    PasswordReset,
    SettingsOut,
    SettingsPatch,
    SettingsReplace,
    TenantCreate,
    TenantOut,
    TenantUpdate,
    UserCreate,
    UserOut,
    UserUpdate,
)

platform_router = APIRouter(prefix="/admin/tenants", tags=["platform admin"])
tenant_admin_router = APIRouter(prefix="/{tenant}/admin", tags=["tenant admin"])


@platform_router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409))
async def create_tenant(
    body: TenantCreate, session: SessionDep, settings: SettingsDep, _: PlatformAdminDep
) -> TenantOut:
    tenant = await service.create_tenant(session, body.slug, body.name, settings.new_tenant_limits())
    return TenantOut.model_validate(tenant)


@platform_router.get("")
async def list_tenants(session: SessionDep, _: PlatformAdminDep) -> list[TenantOut]:
    return [TenantOut.model_validate(tenant) for tenant in await service.list_tenants(session)]


@platform_router.get("/{tenant}")
async def get_tenant(tenant: str, session: SessionDep, _: PlatformAdminDep) -> TenantOut:
    return TenantOut.model_validate(await service.get_tenant(session, tenant))


@platform_router.patch("/{tenant}")
async def update_tenant(
    tenant: str, body: TenantUpdate, session: SessionDep, caches: AdminCachesDep, _: PlatformAdminDep
) -> TenantOut:
    found = await service.get_tenant(session, tenant)
    updated = await service.update_tenant(session, found, **body.model_dump(), caches=caches)
    return TenantOut.model_validate(updated)


# --- users ----------------------------------------------------------------------------------------


@tenant_admin_router.post(
    "/users", status_code=status.HTTP_201_CREATED, tags=["users"], responses=errors(409)
)
async def create_user(
    body: UserCreate,
    tenant: TenantDep,
    _: TenantAdminDep,
    session: SessionDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
) -> UserOut:
    user = await service.create_user(
        session,
        passwords,
        tenant_id=tenant.id,
        email=body.email,
        password=body.password,
        role=body.role,
        min_password_length=settings.min_password_length,
    )
    return UserOut.model_validate(user)


@tenant_admin_router.get("/users", tags=["users"])
async def list_users(tenant: TenantDep, _: TenantAdminDep, session: SessionDep) -> list[UserOut]:
    return [UserOut.model_validate(user) for user in await service.list_users(session, tenant.id)]


@tenant_admin_router.patch("/users/{user_id}", tags=["users"])
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, tenant: TenantDep, _: TenantAdminDep, session: SessionDep
) -> UserOut:
    user = await service.update_user(session, tenant.id, user_id, **body.model_dump())
    return UserOut.model_validate(user)


@tenant_admin_router.post("/users/{user_id}/password", tags=["users"])
async def reset_password(
    user_id: uuid.UUID,
    body: PasswordReset,
    tenant: TenantDep,
    _: TenantAdminDep,
    session: SessionDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
) -> UserOut:
    user = await service.reset_password(
        session,
        passwords,
        tenant.id,
        user_id,
        password=body.password,
        min_password_length=settings.min_password_length,
    )
    return UserOut.model_validate(user)


# --- API keys -------------------------------------------------------------------------------------


@tenant_admin_router.post("/keys", status_code=status.HTTP_201_CREATED, tags=["api keys"])
async def create_api_key(
    body: ApiKeyCreate, tenant: TenantDep, principal: TenantAdminDep, session: SessionDep
) -> ApiKeyCreated:
    api_key, secret = await service.create_api_key(
        session,
        tenant_id=tenant.id,
        name=body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
        created_by=principal.id if principal.kind == "user" else None,
        limits=body.model_dump(include=set(KeyLimits.model_fields)),
    )
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(api_key).model_dump(), "key": secret})


@tenant_admin_router.get("/keys", tags=["api keys"])
async def list_api_keys(tenant: TenantDep, _: TenantAdminDep, session: SessionDep) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(api_key) for api_key in await service.list_api_keys(session, tenant.id)]


@tenant_admin_router.delete("/keys/{key_id}", tags=["api keys"])
async def revoke_api_key(
    key_id: uuid.UUID, tenant: TenantDep, _: TenantAdminDep, session: SessionDep, caches: AdminCachesDep
) -> ApiKeyOut:
    return ApiKeyOut.model_validate(await service.revoke_api_key(session, tenant.id, key_id, caches=caches))


@tenant_admin_router.put("/keys/{key_id}/limits", tags=["api keys"])
async def set_api_key_limits(
    key_id: uuid.UUID,
    body: KeyLimitsReplace,
    tenant: TenantDep,
    _: TenantAdminDep,
    session: SessionDep,
    caches: AdminCachesDep,
) -> ApiKeyOut:
    """Replaces the key's own limits; every one must be sent (null: only the tenant's applies). Tenant
    admins may set them, since they can only tighten what the platform admin allowed the tenant."""
    changed = await service.set_key_limits(session, tenant.id, key_id, body.model_dump(), caches=caches)
    return ApiKeyOut.model_validate(changed)


@tenant_admin_router.patch("/keys/{key_id}/limits", tags=["api keys"])
async def patch_api_key_limits(
    key_id: uuid.UUID,
    body: KeyLimitsPatch,
    tenant: TenantDep,
    _: TenantAdminDep,
    session: SessionDep,
    caches: AdminCachesDep,
) -> ApiKeyOut:
    """Changes the key's limits that are sent (null: only the tenant's applies); the others stay."""
    changed = await service.set_key_limits(session, tenant.id, key_id, body.model_dump(), caches=caches)
    return ApiKeyOut.model_validate(changed)


# --- limits ---------------------------------------------------------------------------------------
# Only platform admins set limits: a tenant that could raise its own quota would not be metered.


@tenant_admin_router.get("/limits", tags=["limits"])
async def get_limits(tenant: TenantDep, _: TenantAdminDep, session: SessionDep) -> LimitsOut:
    return LimitsOut.model_validate(await service.get_limits(session, tenant.id))


@tenant_admin_router.put("/limits", tags=["limits"])
async def put_limits(
    body: LimitsReplace, tenant: TenantDep, _: PlatformAdminDep, session: SessionDep, caches: AdminCachesDep
) -> LimitsOut:
    """Replaces the tenant's limits; every field must be sent (a limit's null: unlimited)."""
    limits = await service.update_limits(session, tenant.id, body.model_dump(), caches=caches)
    return LimitsOut.model_validate(limits)


@tenant_admin_router.patch("/limits", tags=["limits"])
async def patch_limits(
    body: LimitsPatch, tenant: TenantDep, _: PlatformAdminDep, session: SessionDep, caches: AdminCachesDep
) -> LimitsOut:
    """Changes the limits that are sent (a limit's null: unlimited); the others stay as they are."""
    limits = await service.update_limits(session, tenant.id, body.model_dump(), caches=caches)
    return LimitsOut.model_validate(limits)


# --- settings -------------------------------------------------------------------------------------
# Caching and the audit log's text policy are the tenant's own choice: its admins set them.


@tenant_admin_router.get("/settings", tags=["settings"])
async def get_settings(tenant: TenantDep, _: TenantAdminDep, session: SessionDep) -> SettingsOut:
    return SettingsOut.model_validate(await service.get_settings(session, tenant.id))


@tenant_admin_router.put("/settings", tags=["settings"])
async def put_settings(
    body: SettingsReplace, tenant: TenantDep, _: TenantAdminDep, session: SessionDep, caches: AdminCachesDep
) -> SettingsOut:
    """Replaces the tenant's settings; every field must be sent."""
    settings = await service.update_settings(session, tenant.id, body.model_dump(), caches=caches)
    return SettingsOut.model_validate(settings)


@tenant_admin_router.patch("/settings", tags=["settings"])
async def patch_settings(
    body: SettingsPatch, tenant: TenantDep, _: TenantAdminDep, session: SessionDep, caches: AdminCachesDep
) -> SettingsOut:
    """Changes the settings that are sent; the others stay as they are."""
    settings = await service.update_settings(session, tenant.id, body.model_dump(), caches=caches)
    return SettingsOut.model_validate(settings)
