"""The chat turn as the front doors get it: the process's `ChatTurns` over its components, and a model
endpoint's call (who asks, for which tenant, where the response's headers go) gathered by one dependency.

The model endpoints resolve that one dependency, which authenticates, checks the scope and finds the
tenant by calling the functions behind PrincipalDep, InferenceDep and the tenant dependencies: as a tree
of dependencies FastAPI spends a noticeable share of a chat call's CPU solving them. The routes declare
the security schemes themselves (SECURITY).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from llm_platform.audit.context import audit_context
from llm_platform.audit.writer import AuditWriter
from llm_platform.auth.dependencies import (
    TenantSlugPath,
    authenticate_request,
    check_inference,
    credential_tenant,
    inference_tenant,
)
from llm_platform.auth.principal import Principal
from llm_platform.cache.response_cache import asks_for_fresh_answer
from llm_platform.chat.conversations import ConversationStore
from llm_platform.chat.turn import Caller, ChatTurns, Turn, TurnRequest
from llm_platform.core.middleware import current_request_id, response_headers
from tenants.ref import TenantRef


def chat_turns(connection: HTTPConnection) -> ChatTurns:
    """The chat turn over this process's components (`app.state.platform`, built by the app's lifespan)."""
    platform = connection.app.state.platform
    settings = platform.settings
    return ChatTurns(
        platform.catalogue,
        platform.policies,
        platform.cache,
        platform.meter,
        platform.dispatcher,
        ConversationStore(platform.session_factory),
        platform.usage,
        settings.default_chat_model,
        settings.default_max_tokens,
    )


# Even those that never await are `async def`: FastAPI runs a plain `def` dependency in its thread pool.
async def _chat_turns(connection: HTTPConnection) -> ChatTurns:
    return chat_turns(connection)


ChatTurnsDep = Annotated[ChatTurns, Depends(_chat_turns)]


async def _audit_writer(connection: HTTPConnection) -> AuditWriter:
    return connection.app.state.platform.audit


AuditWriterDep = Annotated[AuditWriter, Depends(_audit_writer)]  # where the WebSocket's turns are audited


@dataclass(slots=True)
class ModelCall:
    """An HTTP model call: the turn, its caller, and the headers its response gets whatever it turns
    out to be (a success, an error raised later, a stream)."""

    turns: ChatTurns
    caller: Caller
    headers: dict[str, str]

    async def start(self, asked: TurnRequest) -> Turn:
        """The turn, from the cache or admitted and dispatched; the response learns its rate-limit
        headers and x-cache."""
        turn = await self.turns.start(self.caller, asked)
        self.headers.update(turn.ticket.headers)
        self.headers["x-cache"] = "hit" if turn.cache_hit else "miss"
        return turn

    @classmethod
    def of(cls, request: Request, tenant: TenantRef, principal: Principal) -> ModelCall:
        # Response headers, Cache-Control and the audit context are read off the request here rather
        # than as more dependencies, which FastAPI resolves at several microseconds each.
        caller = Caller(
            tenant,
            principal,
            audit_context(request.scope),
            current_request_id(),
            asks_for_fresh_answer(request),
        )
        return cls(chat_turns(request), caller, response_headers(request.scope))


SECURITY: dict[str, object] = {"security": [{"HTTPBearer": []}, {"APIKeyHeader": []}]}


async def _tenant_call(request: Request, tenant: TenantSlugPath) -> ModelCall:
    principal = check_inference(await authenticate_request(request))
    found = await inference_tenant(request, principal, tenant)
    return ModelCall.of(request, found, principal)


async def _credential_call(request: Request) -> ModelCall:
    principal = check_inference(await authenticate_request(request))
    return ModelCall.of(request, credential_tenant(principal), principal)


TenantCallDep = Annotated[ModelCall, Depends(_tenant_call)]  # /{tenant}/...: the tenant in the path
CredentialCallDep = Annotated[ModelCall, Depends(_credential_call)]  # /v1/...: the credential's tenant
