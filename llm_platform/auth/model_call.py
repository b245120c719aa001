"""Who calls a model endpoint (chat, embeddings), for which tenant, and where the response's headers go:
found by one function per kind of path, which the model endpoints' single dependency calls.

It authenticates, checks the `inference` scope and finds the tenant by calling the functions behind
PrincipalDep, InferenceDep and the tenant dependencies directly: as a tree of dependencies FastAPI
spends a noticeable share of a model call's CPU solving them. The routes declare the security schemes
themselves (SECURITY).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from llm_platform.audit.context import AuditContext, audit_context
from llm_platform.auth.dependencies import (
    authenticate_request,
    check_inference,
    credential_tenant,
    inference_tenant,
)
from llm_platform.auth.principal import Principal
from llm_platform.core.middleware import asks_for_fresh_answer, current_request_id, response_headers
from tenants.ref import TenantRef

SECURITY: dict[str, object] = {"security": [{"HTTPBearer": []}, {"APIKeyHeader": []}]}


@dataclass(slots=True)
class Caller:
    """Who asks for a model's work, for which tenant, and what its action's audit row is filling in."""

    tenant: TenantRef
    principal: Principal
    audit: AuditContext
    request_id: str  # the action's: a worker's log lines and a generation's tag carry it
    fresh: bool = False  # a cached answer will not do (Cache-Control: no-cache)
    endpoint: str = "-"  # the route's path template: the model-call metrics' `endpoint` label


@dataclass(slots=True)
class ModelCaller:
    """An HTTP model call's caller, and the headers its response gets whatever it turns out to be (a
    success, an error raised later, a stream)."""

    caller: Caller
    headers: dict[str, str]

    @classmethod
    def of(cls, request: Request, tenant: TenantRef, principal: Principal) -> ModelCaller:
        # Response headers, Cache-Control and the audit context are read off the request here rather
        # than as more dependencies, which FastAPI resolves at several microseconds each.
        caller = Caller(
            tenant,
            principal,
            audit_context(request.scope),
            current_request_id(),
            asks_for_fresh_answer(request),
            request.scope["route"].path,
        )
        return cls(caller, response_headers(request.scope))


async def tenant_model_caller(request: Request, tenant: str) -> ModelCaller:
    """/{tenant}/...: the tenant in the path (the caller's own, or any for a platform admin)."""
    principal = check_inference(await authenticate_request(request))
    found = await inference_tenant(request, principal, tenant)
    return ModelCaller.of(request, found, principal)


async def credential_model_caller(request: Request) -> ModelCaller:
    """/v1/...: the credential's tenant."""
    principal = check_inference(await authenticate_request(request))
    return ModelCaller.of(request, credential_tenant(principal), principal)
