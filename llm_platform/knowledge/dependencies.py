"""The knowledge base's FastAPI dependencies: who may write (tenant admins, API keys with `kb:write`)
and read (any member, API keys with `inference`), and the process's knowledge base and ingester, read
from `app.state.platform`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection, Request

from llm_platform.auth.dependencies import PrincipalDep, TenantDep, TenantSlugPath, inference_tenant
from llm_platform.auth.principal import Principal
from llm_platform.core.errors import Forbidden
from llm_platform.knowledge.ingestion import Ingester
from llm_platform.knowledge.search import KnowledgeBase
from tenants.models import ApiKeyScope
from tenants.ref import TenantRef

# A key that may write documents may also read them back; an admin key acts as a tenant admin would.
_READ_SCOPES = {ApiKeyScope.inference.value, ApiKeyScope.kb_write.value, ApiKeyScope.admin.value}


async def require_writer(principal: PrincipalDep, _: TenantDep) -> Principal:
    if principal.can_administer_tenant or ApiKeyScope.kb_write.value in principal.scopes:
        return principal
    raise Forbidden(
        "Changing the knowledge base needs a tenant admin, or an API key with the `kb:write` scope",
        code="missing_scope" if principal.kind == "api_key" else "forbidden",
    )


async def require_reader(principal: PrincipalDep, _: TenantDep) -> Principal:
    return check_reader(principal)


def check_reader(principal: Principal) -> Principal:
    if principal.kind == "api_key" and not _READ_SCOPES.intersection(principal.scopes):
        raise Forbidden("This API key lacks the `inference` scope", code="missing_scope")
    return principal


async def get_searching_tenant(
    request: Request, principal: PrincipalDep, tenant: TenantSlugPath
) -> TenantRef:
    """The tenant of a search, for a reader of it. Taken from the credential as a model call takes it,
    with no query (authentication already refused a suspended tenant's): search is a hot path, also
    for chat grounding, and the tenant's row cost a database round trip of its few milliseconds."""
    found = await inference_tenant(request, principal, tenant)
    check_reader(principal)
    return found


KnowledgeWriterDep = Annotated[Principal, Depends(require_writer)]
KnowledgeReaderDep = Annotated[Principal, Depends(require_reader)]
SearchingTenantDep = Annotated[TenantRef, Depends(get_searching_tenant)]


async def get_knowledge_base(connection: HTTPConnection) -> KnowledgeBase:
    return connection.app.state.platform.knowledge


async def get_ingester(connection: HTTPConnection) -> Ingester:
    return connection.app.state.platform.ingester


KnowledgeBaseDep = Annotated[KnowledgeBase, Depends(get_knowledge_base)]
IngesterDep = Annotated[Ingester, Depends(get_ingester)]
