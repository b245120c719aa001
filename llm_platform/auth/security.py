"""Credential primitives: password hashing, JWT access tokens and refresh tokens. No I/O here.

An API key's shape and the digests stored of keys and refresh tokens are the tenant domain's, which holds
their rows (tenants.credentials).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jose import JWTError, jwt
from passlib.context import CryptContext

from llm_platform.core.settings import Settings
from tenants.credentials import sha256_hex

ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret


def password_context(settings: Settings) -> CryptContext:
    return CryptContext(
        schemes=["argon2"],
        argon2__memory_cost=settings.password_hash_memory_kib,
        argon2__rounds=settings.password_hash_time_cost,
        argon2__parallelism=1,
    )


# --- refresh tokens -------------------------------------------------------------------------------


def generate_refresh_token() -> tuple[str, str]:
    """An opaque refresh token and the hash we store of it."""
    token = f"rt_{secrets.token_urlsafe(48)}"
    return token, sha256_hex(token)


# --- JWT access tokens ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_slug: str | None
    role: str
    jti: str
    expires_at: datetime


class InvalidToken(Exception):
    """A JWT that is malformed, forged, expired or not an access token."""


def issue_access_token(
    settings: Settings, *, user_id: uuid.UUID, tenant_slug: str | None, role: str
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    now = datetime.now(UTC)
    ttl_s = settings.access_token_ttl_s
    claims = {
        "sub": str(user_id),
        "tenant": tenant_slug,
        "role": role,
        "typ": ACCESS_TOKEN_TYPE,
        "iss": settings.jwt_issuer,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, settings.resolved_jwt_secret, algorithm=settings.jwt_algorithm)
    return token, ttl_s


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """Verifies signature (only our algorithm: `alg: none` and algorithm swaps fail), expiry and claims."""
    try:
        claims = jwt.decode(
            token,
            settings.resolved_jwt_secret,
            algorithms=[settings.jwt_algorithm],
            issuer=settings.jwt_issuer,
            options={"require_exp": True, "require_iat": True, "require_sub": True, "require_jti": True},
        )
    except JWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.get("typ") != ACCESS_TOKEN_TYPE or "tenant" not in claims or "role" not in claims:
        raise InvalidToken("not an access token")
    try:
        user_id = uuid.UUID(claims["sub"])
    except (ValueError, TypeError) as exc:
        raise InvalidToken("bad subject") from exc
    return AccessClaims(
        user_id=user_id,
        tenant_slug=claims["tenant"],
        role=claims["role"],
        jti=claims["jti"],
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )
