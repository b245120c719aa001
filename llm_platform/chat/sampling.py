"""How a chat turn's sampling parameters are resolved: what the request asks, else the model's defaults,
else the platform's. Pure functions, so the API decides each value once and the reservation, the cache
key and the worker all see the same one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from llm_platform.core.errors import BadRequest
from models_registry.engine.params import SamplingParams
from models_registry.worker.protocol import SAMPLING_DEFAULTS


@dataclass
class AskedSampling:
    """The sampling parameters a caller asked for: None where it set none (resolved below)."""

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


# Resolved one way (below); max_tokens and stop have rules of their own.
SAMPLED = tuple(f.name for f in fields(SamplingParams) if f.name not in ("max_tokens", "stop"))


def resolve_sampling(asked: object, model_defaults: Mapping[str, object]) -> dict[str, object]:
    """Each parameter in SAMPLED: the request's (an attribute of `asked`, None: not set), else the
    model's `default_params`, else the engine's default (the seed's is None: unseeded)."""
    return {name: _first_set(asked, model_defaults, name) for name in SAMPLED}


def _first_set(asked: object, model_defaults: Mapping[str, object], name: str) -> object:
    for value in (getattr(asked, name), model_defaults.get(name)):
        if value is not None:
            return value
    return getattr(SAMPLING_DEFAULTS, name)


@dataclass(frozen=True)
class ResolvedMaxTokens:
    """The completion's budget, and whether it is the platform's default rather than asked for (a
    default is shortened by the worker to the room the prompt leaves; an asked one is refused if too long).
    None: the upstream's own default applies."""

    value: int | None
    is_default: bool = False


def resolve_max_tokens(
    asked: int | None, model_default: int | None, platform_default: int | None, context_length: int
) -> ResolvedMaxTokens:
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
        return ResolvedMaxTokens(chosen)
    if platform_default is None:
        return ResolvedMaxTokens(None)
    return ResolvedMaxTokens(min(platform_default, context_length), is_default=True)
