"""Who is calling: a user (JWT) or an API key, always bound to one tenant unless a platform admin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from tenants.limits import Limits
from tenants.models import ApiKey, ApiKeyScope, Tenant, UserRole


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "api_key"]
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    tenant_slug: str | None
    role: UserRole | None = None  # users only
    scopes: tuple[str, ...] = ()  # API keys only
    email: str | None = None
    api_key_prefix: str | None = None
    key_limits: Limits | None = None  # API keys only: their own limits, on top of the tenant's

    @classmethod
    def of_api_key(cls, key: ApiKey, tenant: Tenant) -> Principal:
        return cls(
            kind="api_key",
            id=key.id,
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            scopes=tuple(key.scopes),
            api_key_prefix=key.prefix,
            key_limits=Limits.of(key),
        )

    @property
    def is_platform_admin(self) -> bool:
        return self.role is UserRole.platform_admin

    @property
    def can_administer_tenant(self) -> bool:
        """Tenant admins, platform admins and keys with the admin scope manage their tenant."""
        if self.kind == "api_key":
            return ApiKeyScope.admin.value in self.scopes
        return self.role in (UserRole.tenant_admin, UserRole.platform_admin)
