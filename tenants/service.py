"""Tenant domain logic: tenants, users (and ending their login sessions), API keys, limits and settings.

Knows nothing of HTTP. Every function that touches a tenant's resource takes the tenant id and filters
by it, so isolation does not depend on the caller remembering to. Every function that changes what the
request path caches takes the caches to forget it in (`caches`, None for a caller that holds none: see
tenants.caches) and forgets after its commit, so the next request sees the change whoever made it.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime

from passlib.context import CryptContext
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.core.db import assign, save_unique, utcnow
from llm_platform.core.errors import BadRequest, Conflict, NotFound
from tenants.caches import AdminCaches
from tenants.credentials import generate_api_key
from tenants.models import (
    ApiKey,
    ApiKeyScope,
    RefreshToken,
    Tenant,
    TenantLimits,
    TenantSettings,
    TenantStatus,
    User,
    UserRole,
)
from tenants.settings_defaults import SETTINGS_DEFAULTS

# --- tenants --------------------------------------------------------------------------------------


async def create_tenant(
    session: AsyncSession, slug: str, name: str | None = None, limits: dict[str, int | None] | None = None
) -> Tenant:
    """Creates a tenant with the given starting limits (the platform's defaults; unlimited if none);
    platform admins change them at .../admin/limits."""
    tenant = Tenant(slug=slug, name=name or slug, status=TenantStatus.active)
    session.add(tenant)
    exists = Conflict(f"A tenant with slug '{slug}' already exists", code="tenant_exists", param="slug")
    await save_unique(session, exists, commit=False)  # the id is needed for the limits row
    session.add(TenantLimits(tenant_id=tenant.id, **(limits or {})))
    await session.commit()
    return tenant


async def find_tenant(session: AsyncSession, slug: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.slug == slug))


async def get_tenant(session: AsyncSession, slug: str) -> Tenant:
    tenant = await find_tenant(session, slug)
    if tenant is None:
        raise NotFound(f"Tenant '{slug}' not found", code="tenant_not_found")
    return tenant


async def list_tenants(session: AsyncSession) -> list[Tenant]:
    return list(await session.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.slug)))


async def update_tenant(
    session: AsyncSession,
    tenant: Tenant,
    *,
    name: str | None = None,
    status: TenantStatus | None = None,
    caches: AdminCaches | None,
) -> Tenant:
    """Renames or suspends/reactivates (None: unchanged). Suspension takes effect on the next request of
    every credential."""
    if name is not None:
        tenant.name = name
    if status is not None:
        tenant.status = status
    await session.commit()
    if caches is not None:
        caches.api_keys.forget(tenant_id=tenant.id)  # cached keys carry the tenant and were checked active
    return tenant


# --- users ----------------------------------------------------------------------------------------


def _check_password(password: str, min_length: int) -> None:
    if len(password) < min_length:
        raise BadRequest(
            f"Password must be at least {min_length} characters", code="weak_password", param="password"
        )


async def create_user(
    session: AsyncSession,
    passwords: CryptContext,
    *,
    tenant_id: uuid.UUID | None,
    email: str,
    password: str,
    role: UserRole,
    min_password_length: int,
) -> User:
    """Creates a user of a tenant, or a platform admin when tenant_id is None (and only then)."""
    if (role is UserRole.platform_admin) != (tenant_id is None):
        raise BadRequest(
            "Platform admins belong to no tenant, and tenant users cannot be platform admins",
            code="invalid_role",
            param="role",
        )
    _check_password(password, min_password_length)
    user = User(
        tenant_id=tenant_id, email=email.strip().lower(), password_hash=passwords.hash(password), role=role
    )
    session.add(user)
    await save_unique(
        session, Conflict("A user with this email already exists", code="user_exists", param="email")
    )
    return user


async def list_users(session: AsyncSession, tenant_id: uuid.UUID) -> list[User]:
    return list(
        await session.scalars(select(User).where(User.tenant_id == tenant_id).order_by(User.created_at))
    )


async def get_user(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, *, fresh: bool = False
) -> User:
    """A user of this tenant (`fresh`: re-read even if this session holds it already)."""
    query = select(User).where(User.id == user_id, User.tenant_id == tenant_id)
    user = await session.scalar(query.execution_options(populate_existing=fresh))
    if user is None:
        raise NotFound("User not found", code="user_not_found")
    return user


async def update_user(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    disabled: bool | None = None,
    role: UserRole | None = None,
) -> User:
    """Disables/enables a user or changes their role; disabling ends their sessions at once. The
    tenant's last enabled tenant admin can be neither demoted nor disabled: nobody could then
    administer the tenant but a platform admin."""
    if role is UserRole.platform_admin:
        raise BadRequest("Tenant users cannot be platform admins", code="invalid_role", param="role")
    # Changes to a tenant's users queue on its row, so two admins demoting each other at once cannot
    # both see the other still an admin. NO KEY: rows that only refer to the tenant are not held up.
    await session.scalar(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True))
    user = await get_user(session, tenant_id, user_id, fresh=True)
    stays_admin = (role or user.role) is UserRole.tenant_admin and not (
        user.disabled if disabled is None else disabled
    )
    if user.role is UserRole.tenant_admin and not user.disabled and not stays_admin:
        await _keep_an_admin(
            session, tenant_id, user, param="role" if role is UserRole.member else "disabled"
        )
    if role is not None:
        user.role = role
    if disabled is not None:
        user.disabled = disabled
        if disabled:
            await revoke_user_sessions(session, user.id)
    await session.commit()
    return user


async def _keep_an_admin(session: AsyncSession, tenant_id: uuid.UUID, leaving: User, *, param: str) -> None:
    others = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.tenant_id == tenant_id,
            User.role == UserRole.tenant_admin,
            User.disabled.is_(False),
            User.id != leaving.id,
        )
    )
    if not others:
        raise Conflict(
            f"{leaving.email} is the tenant's last tenant admin: make another user a tenant admin first",
            code="last_tenant_admin",
            param=param,
        )


async def reset_password(
    session: AsyncSession,
    passwords: CryptContext,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    password: str,
    min_password_length: int,
) -> User:
    """Sets a new password and revokes the user's refresh tokens."""
    _check_password(password, min_password_length)
    user = await get_user(session, tenant_id, user_id)
    user.password_hash = passwords.hash(password)
    await revoke_user_sessions(session, user.id)
    await session.commit()
    return user


async def revoke_user_sessions(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Revokes every refresh token of a user (on disable or password reset: the user's login
    sessions end). The caller commits."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


# --- API keys -------------------------------------------------------------------------------------


async def create_api_key(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    name: str,
    scopes: list[ApiKeyScope] | None = None,
    expires_at: datetime | None = None,
    created_by: uuid.UUID | None = None,
    limits: dict[str, int | None] | None = None,
) -> tuple[ApiKey, str]:
    """Creates a key and returns it with its secret, which is never stored and never shown again."""
    limits = limits or {}
    await _check_key_limits(session, tenant_id, limits)
    if expires_at is not None:
        expires_at = expires_at.replace(tzinfo=UTC) if expires_at.tzinfo is None else expires_at
        if expires_at <= utcnow():
            raise BadRequest("expires_at must be in the future", code="invalid_expiry", param="expires_at")
    new_key = generate_api_key()
    api_key = ApiKey(
        tenant_id=tenant_id,
        name=name,
        prefix=new_key.prefix,
        secret_hash=new_key.secret_hash,
        scopes=sorted({scope.value for scope in scopes or [ApiKeyScope.inference]}),
        created_by=created_by,
        expires_at=expires_at,
        **limits,
    )
    session.add(api_key)
    await session.commit()
    return api_key, new_key.key


async def list_api_keys(session: AsyncSession, tenant_id: uuid.UUID) -> list[ApiKey]:
    return list(
        await session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at))
    )


async def get_api_key(session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    """A key of this tenant; another tenant's key is not found, like a missing one."""
    api_key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id))
    if api_key is None:
        raise NotFound("API key not found", code="api_key_not_found")
    return api_key


async def revoke_api_key(
    session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID, *, caches: AdminCaches | None
) -> ApiKey:
    """Revokes a key of this tenant; it stops working on its next request. Revoking twice is harmless."""
    api_key = await get_api_key(session, tenant_id, key_id)
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        await session.commit()
    if caches is not None:  # also when it was revoked already: perhaps by a process whose cache this isn't
        caches.api_keys.forget(key_id=key_id)
    return api_key


async def set_key_limits(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    key_id: uuid.UUID,
    limits: dict[str, int | None],
    *,
    caches: AdminCaches | None,
) -> ApiKey:
    """Sets the key's limits that are given (None: only the tenant's applies); the others stay."""
    api_key = await get_api_key(session, tenant_id, key_id)
    await _check_key_limits(session, tenant_id, limits)
    assign(api_key, limits)
    await session.commit()
    if caches is not None:
        caches.api_keys.forget(key_id=key_id)  # a key's limits travel with its cached principal
    return api_key


async def _check_key_limits(
    session: AsyncSession, tenant_id: uuid.UUID, limits: dict[str, int | None]
) -> None:
    """A key's limit above its tenant's would promise what the tenant's limit takes away: refused."""
    tenant_limits = await get_limits(session, tenant_id)
    for name, value in limits.items():
        ceiling = getattr(tenant_limits, name)
        if value is not None and ceiling is not None and value > ceiling:
            raise BadRequest(
                f"{name} ({value}) is above the tenant's ({ceiling}): a key's limits can only be tighter",
                code="limit_above_tenant",
                param=name,
            )


# --- limits ---------------------------------------------------------------------------------------


async def get_limits(session: AsyncSession, tenant_id: uuid.UUID) -> TenantLimits:
    limits = await session.get(TenantLimits, tenant_id)
    if limits is None:  # tenants made before limits existed, or by hand
        limits = TenantLimits(tenant_id=tenant_id)
        session.add(limits)
        await session.commit()
    return limits


async def update_limits(
    session: AsyncSession, tenant_id: uuid.UUID, values: dict[str, object], *, caches: AdminCaches | None
) -> TenantLimits:
    """Sets the tenant's limits that are given (None: unlimited); the others stay."""
    limits = await get_limits(session, tenant_id)
    assign(limits, values)
    limits.updated_at = utcnow()
    await session.commit()
    if caches is not None:
        caches.policies.forget(tenant_id)
    return limits


# --- settings -------------------------------------------------------------------------------------


async def get_settings(session: AsyncSession, tenant_id: uuid.UUID) -> TenantSettings:
    """The tenant's settings (the defaults, unsaved, for a tenant that never changed them)."""
    found = await session.get(TenantSettings, tenant_id)
    return found or TenantSettings(tenant_id=tenant_id, **asdict(SETTINGS_DEFAULTS))


async def update_settings(
    session: AsyncSession, tenant_id: uuid.UUID, values: dict[str, object], *, caches: AdminCaches | None
) -> TenantSettings:
    """Sets the settings that are given; the others keep their value (or default, if never saved)."""
    settings = await get_settings(session, tenant_id)
    session.add(settings)  # a tenant's first change saves the defaults it leaves alone
    assign(settings, values)
    settings.updated_at = utcnow()
    await session.commit()
    if caches is not None:
        caches.policies.forget(tenant_id)
    return settings
