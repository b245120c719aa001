"""SQLAlchemy models of the tenant domain: tenants, users, API keys, refresh tokens and limits."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from llm_platform.core.db import Base, UUIDPrimaryKey, str_enum, utcnow
from tenants.settings_defaults import SETTINGS_DEFAULTS


class TenantStatus(StrEnum):
    active = "active"
    suspended = "suspended"


class UserRole(StrEnum):
    platform_admin = "platform_admin"
    tenant_admin = "tenant_admin"
    member = "member"


class ApiKeyScope(StrEnum):
    inference = "inference"  # model endpoints: chat, completions, embeddings, models
    admin = "admin"  # the tenant's admin API, as a tenant admin would
    # Writes to the knowledge base (documents, collections) without the rest of the admin API: for an
    # ingestion pipeline. Stored as the value in api_keys.scopes (a JSON list): no migration.
    kb_write = "kb:write"


class FailMode(StrEnum):
    """What the tenant's requests get while Redis (the shared limiter) is unreachable."""

    open = "open"  # admitted under this replica's own limiter
    closed = "closed"  # 503 until Redis is back


class LimitColumns:
    """Rate limits and token quotas; None means unlimited. Tenants and API keys have them (a key's
    can only be tighter, since a request must pass both)."""

    requests_per_minute: Mapped[int | None]
    tokens_per_minute: Mapped[int | None]
    concurrent_requests: Mapped[int | None]
    monthly_token_quota: Mapped[int | None] = mapped_column(BigInteger)
    daily_token_quota: Mapped[int | None] = mapped_column(BigInteger)


class Tenant(UUIDPrimaryKey, Base):
    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[TenantStatus] = mapped_column(str_enum(TenantStatus), default=TenantStatus.active)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    limits: Mapped[TenantLimits | None] = relationship(back_populates="tenant", lazy="raise")


class User(UUIDPrimaryKey, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Email is unique per tenant; platform admins (no tenant) share one namespace of their own.
        Index("uq_users_tenant_email", "tenant_id", "email", unique=True),
        Index(
            "uq_users_platform_email",
            "email",
            unique=True,
            postgresql_where=text("tenant_id IS NULL"),
            sqlite_where=text("tenant_id IS NULL"),
        ),
    )

    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[UserRole] = mapped_column(str_enum(UserRole))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(UUIDPrimaryKey, LimitColumns, Base):
    __tablename__ = "api_keys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the whole key
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class RefreshToken(UUIDPrimaryKey, Base):
    """A rotating refresh token. Each use retires it; reuse of a retired one revokes its whole family."""

    __tablename__ = "refresh_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class TenantLimits(LimitColumns, Base):
    """Limits and quotas of a tenant (allowed_models None: every model)."""

    __tablename__ = "tenant_limits"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    fail_mode: Mapped[FailMode] = mapped_column(str_enum(FailMode), default=FailMode.open)
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    tenant: Mapped[Tenant] = relationship(back_populates="limits", lazy="raise")


class TenantSettings(Base):
    """A tenant's own choices (tenant admins set them): response caching, and what the audit log keeps."""

    __tablename__ = "tenant_settings"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    cache_enabled: Mapped[bool] = mapped_column(default=SETTINGS_DEFAULTS.cache_enabled)
    cache_ttl_s: Mapped[int] = mapped_column(default=SETTINGS_DEFAULTS.cache_ttl_s)
    cache_max_entry_bytes: Mapped[int] = mapped_column(default=SETTINGS_DEFAULTS.cache_max_entry_bytes)
    # also cache answers drawn at temperature > 0
    cache_sampled: Mapped[bool] = mapped_column(default=SETTINGS_DEFAULTS.cache_sampled)
    # prompts and answers in audit rows
    audit_store_text: Mapped[bool] = mapped_column(default=SETTINGS_DEFAULTS.audit_store_text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UsageDaily(UUIDPrimaryKey, Base):
    """Tokens and requests per tenant, principal (user or API key), model and UTC day: the source of truth
    for usage reports and quotas."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        Index(
            "uq_usage_daily_bucket",
            "tenant_id",
            "day",
            "model",
            "principal_kind",
            "principal_id",
            unique=True,
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    day: Mapped[date]
    model: Mapped[str] = mapped_column(String(200))
    principal_kind: Mapped[str] = mapped_column(String(16))  # user | api_key
    principal_id: Mapped[uuid.UUID]
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
