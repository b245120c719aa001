"""One embeddings request, the same whichever door it came through (/v1/embeddings, /{tenant}/embeddings):

    resolve the model → check the inputs → look up the cache → admit → dispatch or replay → settle

through the components a chat turn uses: the catalogue (may the tenant use the model), the meter (a
request counts; its tokens count against tokens/min and quotas, reserved by an estimate and settled to
what the worker counted), the response cache (per tenant), the audit row and the usage ledger.
"""

from __future__ import annotations

import base64
import json
import sys
from array import array
from dataclasses import dataclass, field

from llm_platform.auth.model_call import Caller
from llm_platform.cache.embedding_cache import CachedEmbeddings, embedding_cache_key
from llm_platform.cache.response_cache import ResponseCache
from llm_platform.core.errors import BadRequest
from llm_platform.metrics.api import ApiMetrics
from llm_platform.metrics.calls import ModelCall
from llm_platform.ratelimit.meter import Meter, Ticket
from models_registry.dispatch import Dispatcher
from models_registry.models import ModelKind
from models_registry.service import Catalogue
from models_registry.worker.protocol import MAX_EMBED_INPUTS, EmbedRequest, other_dimensions
from tenants.policy import TenantPolicies
from tenants.usage import UsageRecord
from tenants.usage_writer import UsageWriter

Inputs = list[str] | list[list[int]]
SPECIAL_TOKENS = 2  # what an encoder adds around an input ([CLS] and [SEP]): room in the estimate


@dataclass(frozen=True)
class EmbeddingsAsk:
    model: str | None  # None: the platform's default embedding model
    inputs: Inputs  # a single input already made a list of one
    dimensions: int | None = None


@dataclass(slots=True)
class Embedded:
    model: str
    vectors: list[list[float]]
    prompt_tokens: int
    cache_hit: bool
    ticket: Ticket  # its rate-limit headers


def as_inputs(value: str | list[str] | list[int] | list[list[int]]) -> Inputs:
    """The wire's four forms of `input` as a list of inputs: a text, or one input's token ids, is one."""
    if isinstance(value, str):
        return [value]
    if value and isinstance(value[0], int):
        return [value]  # type: ignore[list-item]
    return value  # type: ignore[return-value]


def check_inputs(inputs: Inputs, context_length: int) -> None:
    """What is refused before anything is reserved or sent to a worker (each a 400 naming `input`)."""
    if not inputs:
        raise BadRequest("'input' must not be empty", code="invalid_request", param="input")
    if len(inputs) > MAX_EMBED_INPUTS:
        raise BadRequest(
            f"'input' holds {len(inputs)} inputs; at most {MAX_EMBED_INPUTS} per request",
            code="invalid_request",
            param="input",
        )
    for index, item in enumerate(inputs):
        if len(item) == 0:
            raise BadRequest(f"'input[{index}]' is empty", code="invalid_request", param="input")
        # Token ids count exactly (plus the special tokens); a text's tokens only the worker knows.
        if not isinstance(item, str) and len(item) + SPECIAL_TOKENS > context_length:
            raise BadRequest(
                f"'input[{index}]' has {len(item)} tokens; this model reads at most "
                f"{context_length - SPECIAL_TOKENS} besides its special tokens",
                code="context_length_exceeded",
                param="input",
            )


def reservation(inputs: Inputs, context_length: int) -> int:
    """The most tokens the inputs can take, before the worker counts them exactly. The API holds no
    tokenizer; a token is at least one byte of UTF-8 for the tokenizers we serve, and an input over the
    context is refused, so each input costs at most min(its bytes + special tokens, the context)."""
    return sum(
        min(context_length, (len(item.encode()) if isinstance(item, str) else len(item)) + SPECIAL_TOKENS)
        for item in inputs
    )


def encode_base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: the vector as little-endian float32."""
    values = array("f", vector)
    if sys.byteorder == "big":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


@dataclass(slots=True)
class EmbeddingsFlow:
    catalogue: Catalogue
    policies: TenantPolicies
    cache: ResponseCache
    meter: Meter
    dispatcher: Dispatcher
    usage: UsageWriter
    default_embedding_model: str
    metrics: ApiMetrics = field(default_factory=ApiMetrics)

    async def embed(self, caller: Caller, asked: EmbeddingsAsk) -> Embedded:
        call = ModelCall(self.metrics, caller.tenant.slug, caller.endpoint)
        try:
            embedded = await self._embed(caller, asked, call)
        except BaseException as error:
            call.refused(error)
            raise
        if embedded.cache_hit:
            call.served_from_cache(embedded.prompt_tokens)
        else:
            call.answered(embedded.prompt_tokens, 0)
        return embedded

    async def _embed(self, caller: Caller, asked: EmbeddingsAsk, call: ModelCall) -> Embedded:
        tenant = caller.tenant
        model = await self.catalogue.model_for(tenant.id, asked.model or self.default_embedding_model)
        call.model = model.name
        if model.kind is not ModelKind.embedding:
            raise BadRequest(
                f"The model '{model.name}' is not an embedding model", code="invalid_model", param="model"
            )
        check_inputs(asked.inputs, model.context_length)
        policy = await self.policies.get(tenant.id)
        key = embedding_cache_key(tenant.id, model.name, asked.inputs) if policy.cache.enabled else None
        hit = None
        if key is not None and not caller.fresh:
            raw = await self.cache.get_bytes(key)
            hit = CachedEmbeddings.from_bytes(raw) if raw is not None else None
            if hit is not None:
                _check_dimensions(asked.dimensions, hit.vectors)
            self.metrics.cache_lookup(tenant.slug, hit is not None)
        audit = caller.audit
        audit.model, audit.cache_hit, audit.store_text = model.name, hit is not None, policy.audit_store_text
        if audit.store_text:
            audit.request_text = json.dumps(asked.inputs, ensure_ascii=False)
        # A cache hit counts as a request but reserves no tokens: it costs no quota.
        ticket = await self.meter.admit(
            tenant.id, caller.principal, 0 if hit else reservation(asked.inputs, model.context_length)
        )
        used_tokens = 0
        try:
            if hit is None:
                answer = await self.dispatcher.embed(
                    EmbedRequest(
                        request_id=caller.request_id,
                        tenant=tenant.slug,
                        model=model.name,
                        inputs=asked.inputs,
                        dimensions=asked.dimensions,  # refused by the worker before it computes anything
                    )
                )
                result = CachedEmbeddings(answer.embeddings, answer.prompt_tokens)
                used_tokens = result.prompt_tokens
            else:
                result = hit
            self._bill(caller, model.name, ticket, used_tokens, cached=hit is not None)
        finally:  # released at what it used, even when the worker failed: a held lease blocks the tenant
            await ticket.settle(used_tokens)
        if hit is None and key is not None:  # last: a cache that fails must not cost the bill
            await self.cache.put_bytes(
                key, result.to_bytes(), policy.cache.ttl_s, policy.cache.max_entry_bytes
            )
        return Embedded(model.name, result.vectors, result.prompt_tokens, hit is not None, ticket)

    def _bill(self, caller: Caller, model: str, ticket: Ticket, prompt_tokens: int, *, cached: bool) -> None:
        """The audit row's tokens and the usage ledger's: a cached answer costs no tokens."""
        caller.audit.answered(model, prompt_tokens, 0, None)
        principal = caller.principal
        record = UsageRecord(caller.tenant.id, principal.kind, principal.id, model, prompt_tokens, 0, cached)
        self.usage.book(record, ticket.admitted_at)


def _check_dimensions(asked: int | None, vectors: list[list[float]]) -> None:
    """The model's vectors are not cut to another size. The API loads no model: a cached answer's vectors
    say the size (refused before it is served or counted); a worker refuses a miss before its forward."""
    if vectors and (refusal := other_dimensions(asked, len(vectors[0]))):
        raise BadRequest(refusal, code="invalid_request", param="dimensions")
