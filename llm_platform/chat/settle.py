"""The end of a chat turn, step by step: what is audited, billed, remembered, released and cached once
its answer is whole, served from the cache, interrupted or failed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from llm_platform.audit.context import AuditContext
from llm_platform.auth.principal import Principal
from llm_platform.cache.response_cache import CachedAnswer, CacheSlot
from llm_platform.chat.conversations import ConversationStore, Memory
from llm_platform.core.errors import ServiceUnavailable
from llm_platform.metrics.calls import ModelCall
from llm_platform.ratelimit.meter import Ticket
from tenants.usage import UsageRecord
from tenants.usage_writer import UsageWriter


def model_failed() -> ServiceUnavailable:
    """The model failed mid-answer: the error a client is told (in band, once a stream has begun)."""
    return ServiceUnavailable("The model failed while generating; please retry", code="model_error")


@dataclass(slots=True)
class Settlement:
    """How one turn ends. Each outcome runs the named steps it needs, and every outcome releases the
    rate-limit lease to the real count, even when a step before it fails: a lease left held would
    block the tenant's next requests until it expires."""

    usage: UsageWriter
    conversations: ConversationStore
    tenant_id: uuid.UUID
    principal: Principal
    model: str
    ticket: Ticket
    audit: AuditContext
    call: ModelCall  # the call's metrics
    memory: Memory | None = None
    cache_slot: CacheSlot | None = None  # None: a hit, or an answer that may not be cached

    async def answered(self, answer: CachedAnswer) -> None:
        """A complete answer: audited, billed, remembered in its conversation, its lease released at
        what it used, then cached (last: a cache that fails must not cost the bill)."""
        text = "".join(answer.pieces)
        self.note_in_audit(answer.prompt_tokens, answer.completion_tokens, text)
        self.call.answered(answer.prompt_tokens, answer.completion_tokens)
        try:
            self.bill(answer.prompt_tokens, answer.completion_tokens)
            await self.remember(text)
        finally:
            await self.release(answer.prompt_tokens + answer.completion_tokens)
        await self.fill_cache(answer)

    async def served_from_cache(self, hit: CachedAnswer) -> None:
        """A cached answer costs no tokens: usage counts the request as a cached hit."""
        text = "".join(hit.pieces)
        self.note_in_audit(0, 0, text)
        self.call.served_from_cache(hit.prompt_tokens + hit.completion_tokens)
        try:
            self.bill(0, 0, cached=True)
            await self.remember(text)
        finally:
            await self.release(0)

    async def interrupted(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Failed, cancelled or abandoned: billed for the tokens it produced, and nothing more; not
        remembered, not cached."""
        self.note_in_audit(prompt_tokens, completion_tokens, None)
        self.call.interrupted(prompt_tokens, completion_tokens)
        try:
            if prompt_tokens or completion_tokens:
                self.bill(prompt_tokens, completion_tokens)
        finally:
            await self.release(prompt_tokens + completion_tokens)

    def failed(self) -> None:
        """The answer ended in a model failure: audited as such, even where a stream already sent 200."""
        failure = model_failed()
        self.audit.failed(failure.status_code)
        self.call.failed(failure)

    # The steps.

    def note_in_audit(self, prompt_tokens: int, completion_tokens: int, text: str | None) -> None:
        """The audit row's model and tokens (its text too, where the tenant keeps it); the row itself
        is written by whoever audits the action (the HTTP middleware, the WebSocket's turn)."""
        self.audit.answered(self.model, prompt_tokens, completion_tokens, text)

    def bill(self, prompt_tokens: int, completion_tokens: int, cached: bool = False) -> None:
        principal = self.principal
        record = UsageRecord(
            self.tenant_id, principal.kind, principal.id, self.model, prompt_tokens, completion_tokens, cached
        )
        self.usage.book(record, self.ticket.admitted_at)

    async def remember(self, answer: str) -> None:
        if self.memory is not None:
            await self.conversations.remember(self.memory, answer, self.model)

    async def release(self, used_tokens: int) -> None:
        await self.ticket.settle(used_tokens)

    async def fill_cache(self, answer: CachedAnswer) -> None:
        if self.cache_slot is not None:
            await self.cache_slot.store(answer)
