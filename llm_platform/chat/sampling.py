"""How a chat turn's sampling parameters are resolved: what the request asks, else the model's defaults,
else the platform's. Pure functions, so the API decides each value once and the reservation, the cache
key and the worker all see the same one."""

from __future__ import annotations

from dataclasses import dataclass

from llm_platform.errors import BadRequest


@dataclass(frozen=True)
class MaxTokens:
    """The completion's budget, and whether it is the platform's default rather than asked for (a
    default is shortened by the worker to the room the prompt leaves; an asked one is refused if too long).
    None: the upstream's own default applies."""

    value: int | None
    is_default: bool = False


def resolve_max_tokens(
    asked: int | None, model_default: int | None, platform_default: int | None, context_length: int
) -> MaxTokens:
    """The request's max_tokens, else the model's `default_params.max_tokens`, else the platform's
    default (`LLMP_DEFAULT_MAX_TOKENS`) capped by the context. `platform_default` None: the model is
    served by an upstream, which applies its own. An asked value beyond the context is refused."""
    chosen = asked or model_default
    if chosen is not None:
        if chosen > context_length:
            raise BadRequest(
                f"max_tokens ({chosen}) exceeds the model's context ({context_length})",
                code="context_length_exceeded",
                param="max_tokens",
            )
        return MaxTokens(chosen)
    if platform_default is None:
        return MaxTokens(None)
    return MaxTokens(min(platform_default, context_length), is_default=True)
