"""One chat turn, the same whichever front door it came through (`/v1/chat/completions`, `/{tenant}/chat`,
the WebSocket): the doors translate their protocol to a `TurnRequest` and read the `Turn`'s events back.

    recall → resolve → retrieve → look up the cache → admit → dispatch or replay → stream → settle

Recall and resolve come first because the cache key and the reservation both depend on the whole prompt
(a stored conversation's history included); retrieval from the tenant's knowledge base adds passages to
the prompt (chat/grounding.py), so it comes between them and the cache lookup too. Settling is
`settle.Settlement`, run by the stream (`stream.py`) when the answer ends, however it ends.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llm_platform.audit.context import AuditContext
from llm_platform.auth.model_call import Caller
from llm_platform.cache.response_cache import CachedAnswer, CacheSlot, ResponseCache, cache_key, cacheable
from llm_platform.chat.conversations import ConversationStore, Memory
from llm_platform.chat.generation import Generation, reservation, resolve
from llm_platform.chat.grounding import (
    Citation,
    KnowledgeAsk,
    Passage,
    citations,
    ground,
    query_of,
)
from llm_platform.chat.sampling import AskedSampling
from llm_platform.chat.settle import Settlement
from llm_platform.chat.stream import replay, stream_answer
from llm_platform.core.errors import ServiceUnavailable
from llm_platform.core.ids import new_hex_id
from llm_platform.knowledge.schemas import SearchResults
from llm_platform.knowledge.search import KnowledgeBase
from llm_platform.metrics.api import ApiMetrics
from llm_platform.metrics.calls import ModelCall
from llm_platform.ratelimit.meter import Meter, Ticket
from models_registry.dispatch import Dispatcher
from models_registry.service import Catalogue
from models_registry.worker.protocol import ChatMessage, WorkerEvent
from tenants.policy import TenantPolicies, TenantPolicy
from tenants.ref import TenantRef
from tenants.usage_writer import UsageWriter


@dataclass
class TurnRequest:
    """What a caller asks of one turn, in our terms: each front door converts its wire shape to this.

    The prompt is `system`, then the history (a stored conversation's when `conversation_id` names
    one, else the caller's `history`), then `new_messages`: only those are remembered in a conversation.
    """

    model: str | None  # None: the platform's default chat model
    new_messages: list[ChatMessage]
    sampling: AskedSampling = field(default_factory=AskedSampling)
    system: list[ChatMessage] = field(default_factory=list)
    history: list[ChatMessage] = field(default_factory=list)
    conversation_id: str | None = None
    knowledge: KnowledgeAsk | None = None  # ground the answer in the tenant's knowledge base


@dataclass(slots=True)
class Turn:
    """A turn under way: the events of its answer (text, then one final event), and what a front door
    reports beside them."""

    message_id: str
    model: str
    history: list[ChatMessage]  # what came before this turn's messages, as the model was sent it
    conversation_id: uuid.UUID | None
    cache_hit: bool
    ticket: Ticket  # its rate-limit headers, for the doors that have headers
    events: AsyncIterator[WorkerEvent]
    passages: Sequence[Passage] | None = None  # None: not grounded; else what the knowledge base found
    degraded: str | None = None  # the knowledge base's search fell back (`lexical_only`), if it did

    def citations(self, references_used: int) -> list[Citation] | None:
        """The passages the answer was given, once its final event says how many the prompt held; None
        for a turn that did not ask the knowledge base (its response then has no `citations`)."""
        return None if self.passages is None else citations(self.passages, references_used)

    def cited(self, references_used: int) -> dict[str, Any]:
        """What an answer adds about its grounding (CitedAnswer's fields): its citations, and whether the
        search that found them fell back to words alone."""
        return {"citations": self.citations(references_used), "knowledge_base_degraded": self.degraded}


def new_message_id() -> str:
    return f"chatcmpl-{new_hex_id()}"


@dataclass(slots=True)
class ChatTurns:
    """The chat turn's collaborators, and the turn itself (`start`)."""

    catalogue: Catalogue
    policies: TenantPolicies
    cache: ResponseCache
    meter: Meter
    dispatcher: Dispatcher
    conversations: ConversationStore
    usage: UsageWriter
    default_chat_model: str
    default_max_tokens: int  # LLMP_DEFAULT_MAX_TOKENS: applied by `resolve`, and nowhere else
    knowledge: KnowledgeBase | None = None  # the tenants' knowledge bases
    metrics: ApiMetrics = field(default_factory=ApiMetrics)

    async def start(self, caller: Caller, asked: TurnRequest) -> Turn:
        """The turn up to its answer's events. A refusal (an unknown model, a bad parameter, a limit)
        is raised here, a dispatch failure (no worker) with the first event: a front door that awaits
        that event before it sends anything can still answer either with its own status."""
        call = ModelCall(self.metrics, caller.tenant.slug, caller.endpoint)
        try:
            return await self._start(caller, asked, call)
        except BaseException as error:  # counted once here; from here on the settlement counts it
            call.refused(error)
            raise

    async def _start(self, caller: Caller, asked: TurnRequest, call: ModelCall) -> Turn:
        tenant = caller.tenant
        history, memory = await self.recall(caller, asked)
        message_id = new_message_id()
        generation = await resolve(
            self.catalogue,
            tenant,
            asked.model if asked.model is not None else self.default_chat_model,
            [*asked.system, *history, *asked.new_messages],
            asked.sampling,
            f"{caller.request_id}:{message_id}",
            default_max_tokens=self.default_max_tokens,
        )
        call.model = generation.model
        # Retrieval adds to the prompt, which the cache key and the reservation below are computed from.
        found = await self.retrieve(tenant, asked)
        if found is not None and found.data:
            generation = ground(generation, found.data)
        policy = await self.policies.get(tenant.id)
        slot, hit = await self.look_up(tenant, generation, policy, fresh=caller.fresh)
        _note_request(caller.audit, generation, policy, cache_hit=hit is not None)
        # A cache hit counts as a request but reserves no tokens: it costs no quota.
        ticket = await self.meter.admit(tenant.id, caller.principal, 0 if hit else reservation(generation))
        settlement = Settlement(
            self.usage,
            self.conversations,
            tenant.id,
            caller.principal,
            generation.model,
            ticket,
            caller.audit,
            call,
            memory,
            None if hit else slot,
        )
        events = (
            replay(hit, settlement)
            if hit is not None
            else stream_answer(self.dispatcher, generation, settlement)
        )
        return Turn(
            message_id,
            generation.model,
            history,
            memory.conversation_id if memory else None,
            hit is not None,
            ticket,
            events,
            found.data if found is not None else None,
            found.degraded if found is not None else None,
        )

    async def recall(self, caller: Caller, asked: TurnRequest) -> tuple[list[ChatMessage], Memory | None]:
        """The history to put before this turn's messages, and where to remember the turn."""
        if asked.conversation_id is None:
            return asked.history, None
        return await self.conversations.recall(
            caller.tenant.id, caller.principal, asked.conversation_id, asked.new_messages
        )

    async def retrieve(self, tenant: TenantRef, asked: TurnRequest) -> SearchResults | None:
        """The passages the tenant's knowledge base finds for the last user message, best first; None
        when the turn did not ask for them."""
        if asked.knowledge is None:
            return None
        if self.knowledge is None:
            raise ServiceUnavailable("The knowledge base is not available", code="knowledge_unavailable")
        query = query_of(asked.new_messages)
        started = time.perf_counter()
        found = await self.knowledge.retrieve(
            tenant.id, query, asked.knowledge.top_k, asked.knowledge.collections
        )
        self.metrics.knowledge_searched("chat", time.perf_counter() - started)
        return found

    async def look_up(
        self, tenant: TenantRef, generation: Generation, policy: TenantPolicy, *, fresh: bool
    ) -> tuple[CacheSlot | None, CachedAnswer | None]:
        """Where the answer would be cached (None: it may not be), and the cached answer, unless the
        caller wants a fresh one."""
        if not cacheable(generation.request, policy.cache):
            return None, None
        key = cache_key(tenant.id, generation.request)
        slot = CacheSlot(self.cache, key, policy.cache.ttl_s, policy.cache.max_entry_bytes)
        if fresh:
            return slot, None
        hit = await self.cache.get(key)
        self.metrics.cache_lookup(tenant.slug, hit is not None)
        return slot, hit


def _note_request(
    audit: AuditContext, generation: Generation, policy: TenantPolicy, *, cache_hit: bool
) -> None:
    """What the audit row says of the request: the model, whether the cache answered, and the prompt
    where the tenant keeps text."""
    audit.model, audit.cache_hit, audit.store_text = generation.model, cache_hit, policy.audit_store_text
    if audit.store_text:
        audit.request_text = json.dumps(
            [m.model_dump() for m in generation.request.messages], ensure_ascii=False
        )
