"""What an action's audit row should say beyond what the connection shows: who, which tenant, which
model and how many tokens. Dependencies and handlers fill it in; `record_action` writes the row, for
an HTTP request (the middleware) and a WebSocket's chat turn alike."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from starlette.types import Scope

from llm_platform.audit.chain import AuditEntry
from llm_platform.audit.writer import AuditWriter
from llm_platform.core.ids import new_uuid
from llm_platform.core.middleware import header
from llm_platform.core.unicode_text import storable


class Actor(Protocol):
    """Who acted, as the audit row names them (llm_platform.auth.principal.Principal is one)."""

    @property
    def kind(self) -> str: ...

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def tenant_id(self) -> uuid.UUID | None: ...

    @property
    def api_key_prefix(self) -> str | None: ...


@dataclass
class AuditContext:
    tenant_id: uuid.UUID | None = None
    actor_kind: str | None = None
    actor_id: uuid.UUID | None = None
    key_prefix: str | None = None
    resource: str | None = None  # the path, unless a handler names something better
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_hit: bool | None = None
    store_text: bool = False  # the tenant's policy: keep prompt and answer
    request_text: str | None = None
    response_text: str | None = None
    # The status of a failure the response's own status cannot show: a stream sent 200 with its first
    # token, then reported an error in band. The row records what the client was told last.
    failed_status: int | None = None
    audited: bool = True  # False for the platform's own traffic (worker heartbeats): not an API action

    def entry(
        self,
        *,
        at: datetime,
        action: str,
        resource: str,
        status: int,
        latency_ms: int,
        client_address: str | None,
        user_agent: str | None,
        request_id: str | None,
        request_sha256: str | None,
        response_sha256: str | None,
    ) -> AuditEntry:
        return AuditEntry(
            at=at,
            action=action,
            # A path may carry a NUL (`%00`), and a prompt or answer too: Postgres text cannot, and one
            # unstorable row would hold back its whole batch.
            resource=storable((self.resource or resource)[:512]),
            status=self.failed_status or status,
            latency_ms=latency_ms,
            event_id=new_uuid(),
            tenant_id=self.tenant_id,
            actor_kind=self.actor_kind,
            actor_id=self.actor_id,
            key_prefix=self.key_prefix,
            model=self.model,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cache_hit=self.cache_hit,
            client_address=client_address,
            user_agent=user_agent[:512] if user_agent else None,
            request_id=request_id,
            request_sha256=request_sha256,
            response_sha256=response_sha256,
            request_text=storable(self.request_text) if self.request_text else None,
            response_text=storable(self.response_text) if self.response_text else None,
        )

    def identify(self, principal: Actor) -> None:
        self.actor_kind, self.actor_id, self.key_prefix = (
            principal.kind,
            principal.id,
            principal.api_key_prefix,
        )
        if self.tenant_id is None:
            self.tenant_id = principal.tenant_id

    def failed(self, status: int) -> None:
        self.failed_status = status

    def answered(self, model: str, prompt_tokens: int, completion_tokens: int, text: str | None) -> None:
        self.model, self.prompt_tokens, self.completion_tokens = model, prompt_tokens, completion_tokens
        if self.store_text:
            self.response_text = text


def audit_context(scope: Scope) -> AuditContext:
    """This request's context (a detached one where nothing audits the request, e.g. GETs)."""
    return scope.setdefault("state", {}).setdefault("audit", AuditContext())


def record_action(
    writer: AuditWriter,
    scope: Scope,
    context: AuditContext,
    *,
    action: str,
    status: int,
    at: datetime,
    started: float,
    request_id: str | None,
    request_sha256: str | None,
    response_sha256: str | None,
) -> None:
    """Queues the row of one action on a connection (an HTTP request, or a chat turn on a WebSocket):
    who and what from `context`, the path, client and user agent from the connection's `scope`, the
    latency since `started` (a perf_counter reading)."""
    if not context.audited:
        return
    client = scope.get("client")
    writer.record(
        context.entry(
            at=at,
            action=action,
            resource=scope["path"],
            status=status,
            latency_ms=round((time.perf_counter() - started) * 1000),
            client_address=client[0] if client else None,
            user_agent=header(scope, b"user-agent") or None,
            request_id=request_id,
            request_sha256=request_sha256,
            response_sha256=response_sha256,
        )
    )
