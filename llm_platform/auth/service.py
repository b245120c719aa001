"""Authentication: password login, refresh-token rotation, logout, and resolving credentials."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from passlib.context import CryptContext
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_platform.auth.key_cache import ApiKeyCache, CachedKey, KeyRef
from llm_platform.auth.principal import Principal
from llm_platform.auth.security import (
    InvalidToken,
    decode_access_token,
    generate_refresh_token,
    issue_access_token,
)
from llm_platform.auth.throttle import LoginThrottle
from llm_platform.core.db import utcnow
from llm_platform.core.errors import Forbidden, Unauthorized
from llm_platform.core.settings import Settings
from tenants.credentials import API_KEY_PREFIX_MARK, api_key_prefix, digests_equal, sha256_hex
from tenants.models import ApiKey, RefreshToken, Tenant, TenantStatus, User

# last_used_at is written at most this often per key, so a busy key does not cost a write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)
_LOGIN_FAILED = "Incorrect email, password or tenant"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user_id: uuid.UUID  # whom it was issued to (for the audit log)
    tenant_id: uuid.UUID | None


def _tenant_suspended() -> Forbidden:
    return Forbidden("This tenant is suspended", code="tenant_suspended")


async def login(
    session: AsyncSession,
    settings: Settings,
    passwords: CryptContext,
    throttle: LoginThrottle,
    *,
    tenant_slug: str | None,
    email: str,
    password: str,
    client_address: str,
) -> TokenPair:
    """Checks a password login and starts a new refresh-token family.

    Every failure says the same thing and costs the same hash, so nobody learns which accounts exist.
    """
    email = email.strip().lower()
    tenant_slug = tenant_slug.strip().lower() if tenant_slug else None
    account = f"{tenant_slug or '-'}:{email}"
    await throttle.ensure_allowed(account, client_address)

    query = select(User, Tenant).outerjoin(Tenant, User.tenant_id == Tenant.id).where(User.email == email)
    in_tenant = Tenant.slug == tenant_slug if tenant_slug else User.tenant_id.is_(None)
    query = query.where(in_tenant)
    row = (await session.execute(query)).first()

    if row is None:
        passwords.dummy_verify()
        await throttle.record_failure(account, client_address)
        raise Unauthorized(_LOGIN_FAILED)
    user, tenant = row
    valid, new_hash = passwords.verify_and_update(password, user.password_hash)
    if not valid or user.disabled:
        await throttle.record_failure(account, client_address)
        raise Unauthorized(_LOGIN_FAILED)
    await throttle.record_success(account)
    if tenant is not None and tenant.status is TenantStatus.suspended:
        raise _tenant_suspended()
    if new_hash:  # hashing parameters were raised since this password was set
        user.password_hash = new_hash
    pair = await _issue_pair(session, settings, user, tenant, family_id=uuid.uuid4())
    await session.commit()
    return pair


async def refresh(session: AsyncSession, settings: Settings, refresh_token: str) -> TokenPair:
    """Rotates a refresh token: the old one is spent, and reusing a spent one revokes its family."""
    now = utcnow()
    token_hash = sha256_hex(refresh_token)
    # One conditional UPDATE, so two concurrent uses of the same token cannot both succeed.
    spent = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.user_id, RefreshToken.family_id)
    )
    claimed = spent.first()
    if claimed is None:
        reused = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
        if reused is not None and reused.used_at is not None:
            # A spent token came back: it was stolen or replayed. End every session of that family.
            await _revoke_family(session, reused.family_id)
            await session.commit()
        raise Unauthorized("Invalid or expired refresh token")

    user_id, family_id = claimed
    row = (
        await session.execute(
            select(User, Tenant).outerjoin(Tenant, User.tenant_id == Tenant.id).where(User.id == user_id)
        )
    ).first()
    if row is None or row.User.disabled:
        await session.rollback()
        raise Unauthorized("Invalid or expired refresh token")
    user, tenant = row
    if tenant is not None and tenant.status is TenantStatus.suspended:
        await session.rollback()
        raise _tenant_suspended()
    pair = await _issue_pair(session, settings, user, tenant, family_id=family_id)
    await session.commit()
    return pair


async def logout(session: AsyncSession, refresh_token: str) -> None:
    """Revokes the refresh token's whole family (this login on every device it was refreshed on)."""
    token = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(refresh_token))
    )
    if token is None:
        raise Unauthorized("Invalid or expired refresh token")
    await _revoke_family(session, token.family_id)
    await session.commit()


async def authenticate(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    credential: str,
    key_cache: ApiKeyCache | None = None,
) -> Principal:
    """An API key (`sk-...`) or a JWT access token, whichever the credential is. A database session is
    opened only when one is needed: not for a key authenticated in the last second (the hot path)."""
    if credential.startswith(API_KEY_PREFIX_MARK):
        return await principal_from_api_key(sessions, credential, key_cache)
    return await principal_from_access_token(sessions, settings, credential)


async def principal_from_api_key(
    sessions: async_sessionmaker[AsyncSession], key: str, cache: ApiKeyCache | None = None
) -> Principal:
    """Resolves `sk-...`: lookup by prefix, constant-time hash comparison, revocation, expiry, tenant."""
    prefix = api_key_prefix(key)
    if prefix is None:
        raise Unauthorized("Invalid API key")
    digest = sha256_hex(key)  # before any lookup: unknown and known prefixes cost the same hashing
    if cache is not None:
        return await cache.principal(digest, prefix, utcnow())
    return (await load_api_key(sessions, (digest, prefix))).principal


async def load_api_key(sessions: async_sessionmaker[AsyncSession], ref: KeyRef) -> CachedKey:
    """A key as the database has it now, checked (the key cache's loader): raises if it is not valid."""
    digest, prefix = ref
    async with sessions() as session:
        return await _stored_key(session, prefix, digest)


async def _stored_key(session: AsyncSession, prefix: str, digest: str) -> CachedKey:
    row = (
        await session.execute(
            select(ApiKey, Tenant).join(Tenant, ApiKey.tenant_id == Tenant.id).where(ApiKey.prefix == prefix)
        )
    ).first()
    if row is None:
        raise Unauthorized("Invalid API key")
    api_key, tenant = row
    if not digests_equal(digest, api_key.secret_hash):
        raise Unauthorized("Invalid API key")
    now = utcnow()
    if api_key.revoked_at is not None:
        raise Unauthorized("This API key has been revoked", code="api_key_revoked")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise Unauthorized("This API key has expired", code="api_key_expired")
    if tenant.status is TenantStatus.suspended:
        raise _tenant_suspended()
    last_used = api_key.last_used_at
    if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
        await session.execute(update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now))
        await session.commit()
    return CachedKey(Principal.of_api_key(api_key, tenant), api_key.expires_at)


async def principal_from_access_token(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, token: str
) -> Principal:
    """Resolves a JWT, then checks the user and tenant as they are now, not as they were at issue."""
    try:
        claims = decode_access_token(settings, token)
    except InvalidToken as exc:
        raise Unauthorized("Invalid or expired access token") from exc
    async with sessions() as session:
        row = (
            await session.execute(
                select(User, Tenant)
                .outerjoin(Tenant, User.tenant_id == Tenant.id)
                .where(User.id == claims.user_id)
            )
        ).first()
    if row is None or row.User.disabled:
        raise Unauthorized("Invalid or expired access token")
    user, tenant = row
    if (tenant.slug if tenant else None) != claims.tenant_slug:
        raise Unauthorized("Invalid or expired access token")
    if tenant is not None and tenant.status is TenantStatus.suspended:
        raise _tenant_suspended()
    return Principal(
        kind="user",
        id=user.id,
        tenant_id=user.tenant_id,
        tenant_slug=tenant.slug if tenant else None,
        role=user.role,
        email=user.email,
    )


async def _issue_pair(
    session: AsyncSession, settings: Settings, user: User, tenant: Tenant | None, *, family_id: uuid.UUID
) -> TokenPair:
    access_token, expires_in = issue_access_token(
        settings, user_id=user.id, tenant_slug=tenant.slug if tenant else None, role=user.role.value
    )
    refresh_token, refresh_hash = generate_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=refresh_hash,
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_s),
        )
    )
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=expires_in,
        user_id=user.id,
        tenant_id=tenant.id if tenant else None,
    )


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
