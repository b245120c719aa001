"""The embeddings flow as the front doors get it: the process's `EmbeddingsFlow` over its components,
and the call (who asks, for which tenant, where the response's headers go) as one dependency, found as
the chat endpoints find theirs (llm_platform.auth.model_call)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from llm_platform.auth.dependencies import TenantSlugPath
from llm_platform.auth.model_call import Caller, ModelCaller, credential_model_caller, tenant_model_caller
from llm_platform.embeddings.flow import Embedded, EmbeddingsAsk, EmbeddingsFlow


def embeddings_flow(connection: HTTPConnection) -> EmbeddingsFlow:
    """The process's embeddings flow (`app.state.platform.embeddings`, built once over its components)."""
    return connection.app.state.platform.embeddings


@dataclass(slots=True)
class EmbeddingsCall:
    flow: EmbeddingsFlow
    caller: Caller
    headers: dict[str, str]

    async def embed(self, asked: EmbeddingsAsk) -> Embedded:
        """The vectors; the response learns its rate-limit headers and x-cache."""
        embedded = await self.flow.embed(self.caller, asked)
        self.headers.update(embedded.ticket.headers)
        self.headers["x-cache"] = "hit" if embedded.cache_hit else "miss"
        return embedded

    @classmethod
    def of(cls, request: Request, found: ModelCaller) -> EmbeddingsCall:
        return cls(embeddings_flow(request), found.caller, found.headers)


async def _tenant_call(request: Request, tenant: TenantSlugPath) -> EmbeddingsCall:
    return EmbeddingsCall.of(request, await tenant_model_caller(request, tenant))


async def _credential_call(request: Request) -> EmbeddingsCall:
    return EmbeddingsCall.of(request, await credential_model_caller(request))


TenantEmbeddingsDep = Annotated[EmbeddingsCall, Depends(_tenant_call)]  # /{tenant}/...
CredentialEmbeddingsDep = Annotated[EmbeddingsCall, Depends(_credential_call)]  # /v1/...: the credential's
