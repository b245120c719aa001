"""Chat: resolve the model a tenant may use, apply its defaults, dispatch, and report exact usage.

Shared by the OpenAI-compatible API and the tenant's simple /chat API; knows nothing of HTTP.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_platform.audit.context import AuditContext
from llm_platform.auth.principal import Principal
from llm_platform.cache.response_cache import CachedAnswer, CacheSlot, cache_key, cacheable
from llm_platform.chat import conversations
from llm_platform.chat.sampling import resolve_max_tokens, resolve_sampling
from llm_platform.chat.schemas import ChatIn
from llm_platform.core.errors import BadRequest, ServiceUnavailable
from llm_platform.core.ids import new_hex_id
from llm_platform.ratelimit.meter import Ticket
from llm_platform.state import PlatformState
from models_registry.dispatch import Dispatcher, WorkerFailed
from models_registry.engine.params import InvalidParameter, SamplingParams
from models_registry.models import ModelBackend, ModelKind
from models_registry.service import Catalogue
from models_registry.upstream import Upstream
from models_registry.worker.protocol import ChatMessage, GenerateParams, GenerateRequest, WorkerEvent
from tenants.ref import TenantRef
from tenants.usage import Increment, UsageRecord
from tenants.usage_writer import UsageWriter

MAX_PROMPT_CHARS = 2_000_000  # far beyond any context we serve; stops pathological bodies early
TEMPLATE_TOKENS_PER_MESSAGE = 8  # role markers around each message
TEMPLATE_TOKENS = 64  # a default system prompt some chat templates add


@dataclass
class ChatTurn:
    """What a caller asks for, in our terms (the wire shapes are converted to this)."""

    model: str
    messages: list[ChatMessage]
    # Sampling parameters: None where the caller set none (see chat/sampling.py for what applies then).
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool | None = None


@dataclass
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int


@dataclass(frozen=True)
class Generation:
    """A checked request, and where it goes: our workers, or an OpenAI-compatible upstream."""

    request: GenerateRequest
    context_length: int
    upstream: Upstream | None = None

    @property
    def model(self) -> str:
        return self.request.model


async def prepare(
    catalogue: Catalogue, tenant: TenantRef, turn: ChatTurn, request_id: str, *, default_max_tokens: int
) -> Generation:
    """Checks access to the model and the parameters; fills in the model's defaults, then the platform's
    `default_max_tokens` (our workers only: an upstream applies its own)."""
    model = await catalogue.model_for(tenant.id, turn.model)
    if model.kind is not ModelKind.chat:
        raise BadRequest(f"The model '{model.name}' is not a chat model", code="invalid_model", param="model")
    if sum(len(m.content) for m in turn.messages) > MAX_PROMPT_CHARS:
        raise BadRequest(
            "The messages are far longer than the model's context",
            code="context_length_exceeded",
            param="messages",
        )
    defaults = model.default_params or {}
    values = resolve_sampling(turn, defaults) | {"stop": tuple(turn.stop)}
    try:  # the engine's own rules, checked here so a bad request never reaches a worker
        SamplingParams(**values, max_tokens=1)  # type: ignore[arg-type]  # max_tokens: just below
    except InvalidParameter as exc:
        raise BadRequest(exc.message, code="invalid_request", param=exc.param) from exc
    upstream = (
        Upstream(base_url=model.base_url, model=model.source)
        if model.backend is ModelBackend.openai and model.base_url
        else None
    )
    max_tokens = resolve_max_tokens(
        turn.max_tokens,
        defaults.get("max_tokens"),  # type: ignore[arg-type]  # an int: checked when the model was saved
        None if upstream is not None else default_max_tokens,
        model.context_length,
    )
    request = GenerateRequest(
        request_id=request_id,
        tenant=tenant.slug,
        model=model.name,
        messages=turn.messages,
        params=GenerateParams(
            **values, max_tokens=max_tokens.value, max_tokens_is_default=max_tokens.is_default
        ),
    )
    return Generation(request, model.context_length, upstream)


async def answer(
    dispatcher: Dispatcher, generation: Generation, turn_end: TurnEnd
) -> AsyncIterator[WorkerEvent]:
    """Text events, then the final event (a failure mid-stream becomes a final `error` event).

    Accounted for on every path, and shared by every API so they cannot drift apart: a complete answer
    records its usage (and its conversation turn) before the final event goes out; a failed, cancelled or
    abandoned one is billed for the tokens it produced, and nothing more. A refusal before the first
    event (no worker) bills nothing. Either way the rate-limit lease is settled.
    """
    prompt_tokens = completion_tokens = 0
    parts: list[str] = []
    accounted = False
    try:
        async with aclosing(dispatcher.generate(generation.request, generation.upstream)) as events:
            try:
                async for event in events:
                    prompt_tokens = max(prompt_tokens, event.prompt_tokens)
                    completion_tokens = max(completion_tokens, event.completion_tokens)
                    if event.text:
                        parts.append(event.text)
                        yield WorkerEvent(text=event.text)
                    if event.finished:
                        if event.finish_reason == "error":
                            turn_end.failed()
                        else:
                            accounted = True  # even if recording fails: never bill one answer twice
                            answered = CachedAnswer(
                                tuple(parts), event.finish_reason or "stop", prompt_tokens, completion_tokens
                            )
                            await turn_end(answered, generation.model)
                        yield event.model_copy(update={"text": ""})  # its text went out just above
                        return
            except WorkerFailed:
                turn_end.failed()
                yield WorkerEvent(
                    finished=True, finish_reason="error", error="The model failed while generating"
                )
    finally:
        if not accounted:
            # Also when the client went away: the server is cancelling this task, and billing must finish.
            with anyio.CancelScope(shield=True):
                await turn_end.interrupted(prompt_tokens, completion_tokens, generation.model)


def model_failed() -> ServiceUnavailable:
    """The model failed mid-answer: the error a client is told (in band, once a stream has begun)."""
    return ServiceUnavailable("The model failed while generating; please retry", code="model_error")


async def resume(first: WorkerEvent, events: AsyncIterator[WorkerEvent]) -> AsyncIterator[WorkerEvent]:
    """`first` (already taken, so errors before it got a proper status code), then the rest. Closing
    `events` stays the caller's job."""
    yield first
    if not first.finished:
        async for event in events:
            yield event


async def complete(events: AsyncIterator[WorkerEvent]) -> Completion:
    """The whole answer at once, from `answer()`'s events."""
    started = time.perf_counter()
    parts: list[str] = []
    async with aclosing(events):  # type: ignore[type-var]
        async for event in events:
            parts.append(event.text)
            if event.finished:
                if event.finish_reason == "error":
                    raise model_failed()
                return Completion(
                    text="".join(parts),
                    finish_reason=event.finish_reason or "stop",
                    prompt_tokens=event.prompt_tokens,
                    completion_tokens=event.completion_tokens,
                    latency_ms=round((time.perf_counter() - started) * 1000),
                )
    raise ServiceUnavailable("The model ended the answer early; please retry", code="model_error")


@dataclass
class Started:
    """A generation under way (or replayed from the cache): its events, and what admitted it."""

    events: AsyncIterator[WorkerEvent]
    ticket: Ticket
    cache_hit: bool


async def start(
    state: PlatformState,
    tenant: TenantRef,
    principal: Principal,
    generation: Generation,
    memory: Memory | None = None,
    *,
    fresh: bool = False,
    audit: AuditContext | None = None,
) -> Started:
    """Serves from the cache when it can (unless `fresh`), else admits the generation against the
    limits, reserving its most tokens, and dispatches it. A cache hit counts as a request but reserves
    no tokens: it costs no quota."""
    policy = await state.policies.get(tenant.id)
    slot, hit = None, None
    if cacheable(generation.request, policy.cache):
        key = cache_key(tenant.id, generation.request)
        slot = CacheSlot(state.cache, key, policy.cache.ttl_s, policy.cache.max_entry_bytes)
        hit = None if fresh else await state.cache.get(key)
    audit = audit or AuditContext()
    audit.model, audit.cache_hit, audit.store_text = (
        generation.model,
        hit is not None,
        policy.audit_store_text,
    )
    if audit.store_text:
        audit.request_text = json.dumps(
            [m.model_dump() for m in generation.request.messages], ensure_ascii=False
        )
    reserve = 0 if hit else reservation(generation)
    ticket = await state.meter.admit(tenant.id, principal, reserve)
    turn_end = TurnEnd(
        state.session_factory, state.usage, tenant.id, principal, ticket, memory, None if hit else slot, audit
    )
    if hit is not None:
        return Started(replay(hit, turn_end, generation.model), ticket, cache_hit=True)
    return Started(answer(state.dispatcher, generation, turn_end), ticket, cache_hit=False)


async def replay(hit: CachedAnswer, turn_end: TurnEnd, model: str) -> AsyncIterator[WorkerEvent]:
    """A cached answer, as the same events the model sent the first time."""
    await turn_end.served_from_cache(hit, model)
    for piece in hit.pieces:
        yield WorkerEvent(text=piece)
    yield WorkerEvent(
        finished=True,
        finish_reason=hit.finish_reason,  # type: ignore[arg-type]
        prompt_tokens=hit.prompt_tokens,
        completion_tokens=hit.completion_tokens,
    )


def reservation(generation: Generation) -> int:
    """The most tokens a generation can use, before the worker counts them exactly.

    The API holds no tokenizer. The tokenizers we serve are byte-level (a token is at least one byte),
    so the prompt's UTF-8 length, plus room for the chat template's markers and default system prompt,
    bounds its tokens from above; add the completion budget (the max_tokens `prepare` resolved, which
    the worker never exceeds; the whole context where an upstream applies its own default), cap at the
    context.
    """
    messages = generation.request.messages
    prompt = sum(len(m.content.encode()) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages) + TEMPLATE_TOKENS
    completion = generation.request.params.max_tokens or generation.context_length
    return min(generation.context_length, prompt + completion)


@dataclass
class Memory:
    """Where a turn is remembered: a conversation, and what the caller said in this turn."""

    conversation_id: uuid.UUID
    new_messages: list[ChatMessage]


@dataclass
class TurnEnd:
    """What happens once an answer ends. Complete: its usage is recorded, the turn is stored in its
    conversation if it has one, and the answer is cached if it may be. Interrupted: the tokens it
    produced are recorded. Either way the rate-limit lease is settled to the real count. Runs in a
    session of its own: a stream outlives its request's session."""

    session_factory: async_sessionmaker[AsyncSession]
    usage: UsageWriter
    tenant_id: uuid.UUID
    principal: Principal
    ticket: Ticket
    memory: Memory | None = None
    cache_slot: CacheSlot | None = None
    audit: AuditContext = field(default_factory=AuditContext)

    async def __call__(self, answered: CachedAnswer, model: str) -> None:
        used = answered.prompt_tokens + answered.completion_tokens
        text = "".join(answered.pieces)
        self.audit.answered(model, answered.prompt_tokens, answered.completion_tokens, text)
        try:
            await self._record(model, answered.prompt_tokens, answered.completion_tokens, text)
        finally:
            await self.ticket.settle(used)
        if self.cache_slot is not None:
            await self.cache_slot.store(answered)

    async def served_from_cache(self, hit: CachedAnswer, model: str) -> None:
        """A cached answer costs no tokens: usage counts the request as a cached hit."""
        text = "".join(hit.pieces)
        self.audit.answered(model, 0, 0, text)
        try:
            await self._record(model, 0, 0, text, cached=True)
        finally:
            await self.ticket.settle(0)

    def failed(self) -> None:
        """The answer ended in a model failure: audited as such, even where a stream already sent 200."""
        self.audit.failed(model_failed().status_code)

    async def interrupted(self, prompt_tokens: int, completion_tokens: int, model: str) -> None:
        self.audit.answered(model, prompt_tokens, completion_tokens, None)
        try:
            if prompt_tokens or completion_tokens:
                await self._record(model, prompt_tokens, completion_tokens, None)
        finally:
            await self.ticket.settle(prompt_tokens + completion_tokens)

    async def _record(
        self, model: str, prompt_tokens: int, completion_tokens: int, answer: str | None, cached: bool = False
    ) -> None:
        """Usage, and the turn in its conversation when the answer is whole (`answer` not None)."""
        principal = self.principal
        usage = UsageRecord(
            self.tenant_id, principal.kind, principal.id, model, prompt_tokens, completion_tokens, cached
        )
        self.usage.add(Increment.of(usage, self.ticket.admitted_at.date()))
        if self.memory is not None and answer is not None:
            async with self.session_factory() as session:
                await conversations.append_turn(
                    session, self.memory.conversation_id, self.memory.new_messages, answer, model
                )


async def recall(
    sessions: async_sessionmaker[AsyncSession],
    tenant: TenantRef,
    principal: Principal,
    conversation_id: str | None,
    new_messages: list[ChatMessage],
) -> tuple[list[ChatMessage], Memory | None]:
    """The stored history to put before this turn's messages, and where to remember the turn."""
    if conversation_id is None:
        return [], None
    async with sessions() as session:
        conversation = await conversations.get_conversation(session, tenant.id, principal, conversation_id)
        return await conversations.history(session, conversation), Memory(conversation.id, new_messages)


@dataclass
class SimpleChat:
    generate: Generation
    message_id: str
    history: list[ChatMessage]  # what came before this turn's prompt
    prompt: ChatMessage
    memory: Memory | None


async def prepare_simple(
    catalogue: Catalogue,
    sessions: async_sessionmaker[AsyncSession],
    tenant: TenantRef,
    principal: Principal,
    body: ChatIn,
    default_model: str,
    request_id: str,
    *,
    default_max_tokens: int,
) -> SimpleChat:
    """The simple chat form (prompt + history or a stored conversation) turned into a generation."""
    prompt = ChatMessage(role="user", content=body.prompt)
    stored, memory = await recall(sessions, tenant, principal, body.conversation_id, [prompt])
    history = stored if memory else [ChatMessage(role=m.role, content=m.content) for m in body.history]
    system = [ChatMessage(role="system", content=body.system)] if body.system else []
    turn = ChatTurn(
        model=body.model or default_model,
        messages=[*system, *history, prompt],
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        ignore_eos=body.ignore_eos,
    )
    message_id = new_message_id()
    generate = await prepare(
        catalogue, tenant, turn, f"{request_id}:{message_id}", default_max_tokens=default_max_tokens
    )
    return SimpleChat(generate, message_id, history, prompt, memory)


def new_message_id() -> str:
    return f"chatcmpl-{new_hex_id()}"
