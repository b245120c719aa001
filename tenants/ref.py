"""A tenant as a model call knows it: its id (to scope and meter) and slug (to name it to workers).

Model calls are the hot path, and the caller's own tenant is already in its credential: no row, no
session needed. Admin routes use the ORM row (tenants.models.Tenant) instead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol


class _Identified(Protocol):
    id: uuid.UUID
    slug: str


@dataclass(frozen=True, slots=True)
class TenantRef:
    id: uuid.UUID
    slug: str

    @classmethod
    def of(cls, tenant: _Identified) -> TenantRef:
        return cls(tenant.id, tenant.slug)
