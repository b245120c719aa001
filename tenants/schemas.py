"""Wire shapes of the tenant domain's admin API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import MISSING, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from llm_platform.core.request_body import RequestBody, patching, replacing
from tenants.models import ApiKeyScope, FailMode, TenantStatus, UserRole
from tenants.settings_defaults import SETTINGS_DEFAULTS

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# Rates and concurrency are 32-bit integer columns; a larger number would fail in the database, not here.
Limit = Annotated[int, Field(ge=0, le=2**31 - 1)]
# Quotas are 64-bit columns, counted in Redis by Lua, whose numbers are doubles: exact up to 2**53.
Quota = Annotated[int, Field(ge=0, le=2**53)]


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- tenants --------------------------------------------------------------------------------------


# First path segments the platform itself uses: a tenant by one of these names would be unreachable.
RESERVED_SLUGS = frozenset(
    {
        "admin",
        "auth",
        "v1",
        "internal",
        "docs",
        "redoc",
        "openapi.json",
        "healthz",
        "readyz",
        "console",
        "metrics",
    }
)


class TenantCreate(RequestBody):
    slug: Slug
    name: DisplayName | None = None

    @field_validator("slug")
    @classmethod
    def _not_reserved(cls, slug: str) -> str:
        if slug in RESERVED_SLUGS:
            raise ValueError(f"'{slug}' is reserved by the platform")
        return slug


class TenantUpdate(RequestBody):
    """PATCH: a field left out stays as it is; neither may be null."""

    name: DisplayName | MISSING = MISSING
    status: TenantStatus | MISSING = MISSING


class TenantOut(ORMModel):
    id: uuid.UUID
    slug: str
    name: str
    status: TenantStatus
    created_at: datetime


# --- users ----------------------------------------------------------------------------------------


class UserCreate(RequestBody):
    email: EmailStr
    password: Password
    role: UserRole = UserRole.member


class UserUpdate(RequestBody):
    """PATCH: a field left out stays as it is; neither may be null."""

    disabled: bool | MISSING = MISSING
    role: UserRole | MISSING = MISSING


class PasswordReset(RequestBody):
    password: Password


class UserOut(ORMModel):
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    email: str
    role: UserRole
    disabled: bool
    created_at: datetime


# --- API keys -------------------------------------------------------------------------------------


class KeyLimits(BaseModel):
    """Per minute: requests, prompt + completion tokens; in flight at once; token quotas per UTC month and
    day. Null means unlimited. An API key's limits apply on top of its tenant's, so they can only be
    tighter, and cannot be set above them."""

    requests_per_minute: Limit | None = None
    tokens_per_minute: Limit | None = None
    concurrent_requests: Limit | None = None
    monthly_token_quota: Quota | None = None
    daily_token_quota: Quota | None = None


KeyLimitsReplace = replacing(KeyLimits, "KeyLimitsReplace")
KeyLimitsPatch = patching(KeyLimits, "KeyLimitsPatch")


class ApiKeyCreate(RequestBody, KeyLimits):
    """Limits left out are null: only the tenant's apply."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    scopes: Annotated[list[ApiKeyScope], Field(min_length=1)] = [ApiKeyScope.inference]
    expires_at: datetime | None = Field(default=None, description="UTC; a naive time is read as UTC")


class ApiKeyOut(KeyLimits, ORMModel):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_by: uuid.UUID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The whole key. It is shown this once and cannot be recovered.")


# --- limits ---------------------------------------------------------------------------------------


class TenantLimitFields(KeyLimits):
    """Every limit null means unlimited; allowed_models null means every enabled model; fail_mode is
    never null."""

    fail_mode: FailMode = Field(
        default=FailMode.open,
        description="While Redis is unreachable: `open` admits under each replica's own limiter, "
        "`closed` answers 503",
    )
    allowed_models: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] | None = None


LimitsReplace = replacing(TenantLimitFields, "TenantLimitsReplace")
LimitsPatch = patching(TenantLimitFields, "TenantLimitsPatch")


class LimitsOut(TenantLimitFields, ORMModel):
    updated_at: datetime


# --- settings -------------------------------------------------------------------------------------


class SettingsFields(BaseModel):
    """The tenant's own choices (the defaults are a tenant's until it changes them); none is ever null."""

    cache_enabled: bool = Field(
        default=SETTINGS_DEFAULTS.cache_enabled,
        description="Serve repeated deterministic requests from cache",
    )
    cache_ttl_s: Annotated[int, Field(ge=1, le=30 * 86400, description="How long an answer stays cached")] = (
        SETTINGS_DEFAULTS.cache_ttl_s
    )
    cache_max_entry_bytes: Annotated[
        int, Field(ge=1024, le=16 * 1024 * 1024, description="Larger answers are not cached")
    ] = SETTINGS_DEFAULTS.cache_max_entry_bytes
    cache_sampled: bool = Field(
        default=SETTINGS_DEFAULTS.cache_sampled,
        description="Also cache answers sampled at temperature > 0 without a seed (repeats get one text)",
    )
    audit_store_text: bool = Field(
        default=SETTINGS_DEFAULTS.audit_store_text,
        description="Keep prompts and answers in the audit log (only their hashes otherwise)",
    )


SettingsReplace = replacing(SettingsFields, "TenantSettingsReplace")
SettingsPatch = patching(SettingsFields, "TenantSettingsPatch")


class SettingsOut(SettingsFields, ORMModel):
    updated_at: datetime | None = None


class UsageRow(BaseModel):
    """One group of a usage report; the group's key is `day`, `model`, `tenant` or the principal."""

    model_config = ConfigDict(extra="allow")

    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_hits: int


class UsageReport(BaseModel):
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    group_by: str
    rows: list[UsageRow]
    totals: UsageRow
