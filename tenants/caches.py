"""What an API process must forget after an admin change of a tenant, so that its next request reads it.

The service function that makes a change takes these caches and forgets the entries it changed once the
change is committed: a reload then reads the new row (one begun before stores nothing; see
llm_platform.core.refreshing_cache). So every caller (the HTTP API, a console action, a script) gets the same
behaviour without having to remember it. A caller that holds no caches, such as the CLI in a process of
its own, passes None: the API processes then pick the change up within their caches' TTL (a second).
Users are in no cache (an access token's user is read on every request): their changes forget nothing.

The caches are described by what the service needs of them (protocols) rather than by their classes: the
API key cache belongs to auth, which imports this domain, and the tenant domain must not import it back.
AdminCachesDep hands a route this process's caches.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends
from starlette.requests import HTTPConnection


class ApiKeyForgetting(Protocol):
    """llm_platform.auth.key_cache.ApiKeyCache: principals of API keys, with their limits and tenant."""

    def forget(self, *, key_id: uuid.UUID | None = None, tenant_id: uuid.UUID | None = None) -> None: ...


class PolicyForgetting(Protocol):
    """tenants.policy.TenantPolicies: a tenant's limits and settings as the request path uses them."""

    def forget(self, tenant_id: uuid.UUID) -> None: ...


@dataclass(frozen=True)
class AdminCaches:
    """The per-process caches that a change to a tenant, its keys, limits or settings makes stale."""

    api_keys: ApiKeyForgetting
    policies: PolicyForgetting


async def get_admin_caches(connection: HTTPConnection) -> AdminCaches:
    return connection.app.state.platform.admin_caches


AdminCachesDep = Annotated[AdminCaches, Depends(get_admin_caches)]
