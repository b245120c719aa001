"""The chat turn as the front doors get it: the process's `ChatTurns` over its components, and a model
endpoint's call (who asks, for which tenant, where the response's headers go) gathered by one dependency
(the caller is found by llm_platform.auth.model_call, shared with the embeddings endpoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from llm_platform.audit.writer import AuditWriter
from llm_platform.auth.dependencies import TenantSlugPath
from llm_platform.auth.model_call import Caller, credential_model_caller, tenant_model_caller
from llm_platform.chat.turn import ChatTurns, Turn, TurnRequest


def chat_turns(connection: HTTPConnection) -> ChatTurns:
    """The process's chat turn (`app.state.platform.chat_turns`, built once over its components)."""
    return connection.app.state.platform.chat_turns


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


async def _tenant_call(request: Request, tenant: TenantSlugPath) -> ModelCall:
    found = await tenant_model_caller(request, tenant)
    return ModelCall(chat_turns(request), found.caller, found.headers)


async def _credential_call(request: Request) -> ModelCall:
    found = await credential_model_caller(request)
    return ModelCall(chat_turns(request), found.caller, found.headers)


TenantCallDep = Annotated[ModelCall, Depends(_tenant_call)]  # /{tenant}/...: the tenant in the path
CredentialCallDep = Annotated[ModelCall, Depends(_credential_call)]  # /v1/...: the credential's tenant
