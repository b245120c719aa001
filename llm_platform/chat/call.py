"""A model endpoint's call: everything it needs beyond its body, gathered by one dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from llm_platform.audit.context import AuditContext, audit_context
from llm_platform.auth.dependencies import (
    TenantSlugPath,
    authenticate_request,
    check_inference,
    credential_tenant,
    inference_tenant,
)
from llm_platform.auth.principal import Principal
from llm_platform.cache.response_cache import asks_for_fresh_answer
from llm_platform.chat import service
from llm_platform.core.middleware import response_headers
from llm_platform.state import PlatformState
from tenants.ref import TenantRef


@dataclass
class ModelCall:
    tenant: TenantRef
    principal: Principal
    state: PlatformState  # no request-scoped database session: a model call opens one only if it must
    headers: dict[str, str]  # put on the response, whatever it turns out to be
    fresh: bool  # Cache-Control: no-cache
    audit: AuditContext

    async def start(self, generation: service.Generation, memory: service.Memory | None) -> service.Started:
        """From the cache or admitted and dispatched; the response learns its rate-limit headers and
        x-cache."""
        started = await service.start(
            self.state,
            self.tenant,
            self.principal,
            generation,
            memory,
            fresh=self.fresh,
            audit=self.audit,
        )
        self.headers.update(started.ticket.headers)
        self.headers["x-cache"] = "hit" if started.cache_hit else "miss"
        return started

    @classmethod
    def of(
        cls,
        request: Request,
        tenant: TenantRef,
        principal: Principal,
        state: PlatformState,
    ) -> ModelCall:
        # Response headers, Cache-Control and the audit context are read off the request here rather
        # than as three more dependencies, which FastAPI resolves at ~8 us each, on the hottest path.
        return cls(
            tenant,
            principal,
            state,
            response_headers(request.scope),
            asks_for_fresh_answer(request),
            audit_context(request.scope),
        )


# The model endpoints resolve one dependency, which authenticates, checks the scope and finds the
# tenant by calling the functions behind PrincipalDep, InferenceDep and the tenant dependencies: as a
# tree of seven dependencies FastAPI spent ~13% of a chat call's CPU solving them (measured with
# py-spy under load), now ~5% with the body's validation. The routes declare the security schemes
# themselves (SECURITY).
SECURITY: dict[str, object] = {"security": [{"HTTPBearer": []}, {"APIKeyHeader": []}]}


async def _tenant_call(request: Request, tenant: TenantSlugPath) -> ModelCall:
    state: PlatformState = request.app.state.platform
    principal = check_inference(await authenticate_request(request))
    return ModelCall.of(request, await inference_tenant(request, principal, tenant), principal, state)


async def _credential_call(request: Request) -> ModelCall:
    principal = check_inference(await authenticate_request(request))
    return ModelCall.of(request, credential_tenant(principal), principal, request.app.state.platform)


TenantCallDep = Annotated[ModelCall, Depends(_tenant_call)]  # /{tenant}/...: the tenant in the path
CredentialCallDep = Annotated[ModelCall, Depends(_credential_call)]  # /v1/...: the credential's tenant
