"""A turn's generation: the model a tenant may use, its parameters resolved once (max_tokens included),
where it goes (our workers or an upstream), and the most tokens it can cost (what admission reserves)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llm_platform.chat.sampling import AskedSampling, ResolvedMaxTokens, resolve_max_tokens, resolve_sampling
from llm_platform.core.errors import BadRequest
from models_registry.engine.params import InvalidParameter, SamplingParams
from models_registry.models import ModelBackend, ModelKind
from models_registry.service import Catalogue
from models_registry.upstream import Upstream
from models_registry.worker.protocol import ChatMessage, GenerateParams, GenerateRequest
from tenants.ref import TenantRef

MAX_PROMPT_CHARS = 2_000_000  # far beyond any context we serve; stops pathological bodies early
TEMPLATE_TOKENS_PER_MESSAGE = 8  # role markers around each message
TEMPLATE_TOKENS = 64  # a default system prompt some chat templates add


@dataclass(frozen=True)
class Generation:
    """A checked request, and where it goes: our workers, or an OpenAI-compatible upstream.

    `max_tokens` is the one decision of the completion's budget: the request sent to the worker carries
    it, and `reservation()` reserves it.
    """

    request: GenerateRequest
    context_length: int
    max_tokens: ResolvedMaxTokens
    upstream: Upstream | None = None
    # Knowledge-base passages the API put into the messages itself (an upstream model: chat/grounding.py);
    # None: a worker of ours fits the request's references and reports how many it used.
    references_in_prompt: int | None = None

    @property
    def model(self) -> str:
        return self.request.model


async def resolve(
    catalogue: Catalogue,
    tenant: TenantRef,
    model_name: str,
    messages: list[ChatMessage],
    asked: AskedSampling,
    request_id: str,
    *,
    default_max_tokens: int,
) -> Generation:
    """Checks access to the model and the parameters; fills in the model's defaults, then the platform's
    `default_max_tokens` (our workers only: an upstream applies its own)."""
    model = await catalogue.model_for(tenant.id, model_name)
    if model.kind is not ModelKind.chat:
        raise BadRequest(f"The model '{model.name}' is not a chat model", code="invalid_model", param="model")
    if sum(len(m.content) for m in messages) > MAX_PROMPT_CHARS:
        raise BadRequest(
            "The messages are far longer than the model's context",
            code="context_length_exceeded",
            param="messages",
        )
    defaults = model.default_params or {}
    values = resolve_sampling(asked, defaults) | {"stop": tuple(asked.stop)}
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
        asked.max_tokens,
        defaults.get("max_tokens"),  # type: ignore[arg-type]  # an int: checked when the model was saved
        None if upstream is not None else default_max_tokens,
        model.context_length,
    )
    request = GenerateRequest(
        request_id=request_id,
        tenant=tenant.slug,
        model=model.name,
        messages=messages,
        params=GenerateParams(
            **values, max_tokens=max_tokens.value, max_tokens_is_default=max_tokens.is_default
        ),
    )
    return Generation(request, model.context_length, max_tokens, upstream)


def reservation(generation: Generation) -> int:
    """The most tokens a generation can use, before the worker counts them exactly.

    The API holds no tokenizer. The tokenizers we serve are byte-level (a token is at least one byte),
    so the prompt's UTF-8 length, plus room for the chat template's markers and default system prompt,
    bounds its tokens from above; add the completion budget (the max_tokens `resolve` decided, which
    the worker never exceeds; the whole context where an upstream applies its own default), cap at the
    context.
    """
    prompt = prompt_tokens_at_most(generation.request.messages)
    completion = generation.max_tokens.value or generation.context_length
    return min(generation.context_length, prompt + completion)


def prompt_tokens_at_most(messages: Sequence[ChatMessage]) -> int:
    """An upper bound of the prompt's tokens without a tokenizer (see `reservation`)."""
    return sum(len(m.content.encode()) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages) + TEMPLATE_TOKENS
