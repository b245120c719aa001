"""One generation as the engine sees it: what a caller submits, the events it gets back, and the
engine's bookkeeping for a request between admission and its final event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from transformers import DynamicCache

from models_registry.engine.detokenizer import IncrementalDetokenizer, StopStringFilter
from models_registry.engine.params import SamplingParams
from models_registry.engine.sampler import RowState


@dataclass(frozen=True)
class GenerationEvent:
    request_id: str
    text: str
    finished: bool = False
    finish_reason: str | None = None  # stop | length | cancelled | error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


@dataclass
class GenerationRequest:
    request_id: str
    tenant: str
    prompt_ids: list[int]
    params: SamplingParams
    sink: Callable[[GenerationEvent], None]  # called on the engine thread; must not block


class EngineClosed(RuntimeError):
    pass


@dataclass
class GenerationState:
    """A request from its admission to its final event: sampling state, streamed text, KV progress."""

    request: GenerationRequest
    row_state: RowState
    detokenizer: IncrementalDetokenizer
    stop_filter: StopStringFilter
    generated: list[int] = field(default_factory=list)
    prefilled: int = 0
    reused: int = 0  # prompt tokens whose KV came from the prefix cache
    prefill_cache: DynamicCache | None = None
    pending_token: int | None = None  # sampled, not yet fed through the model
    finish_reason: str | None = None

    @property
    def reserved_tokens(self) -> int:
        return len(self.request.prompt_ids) + self.request.params.max_tokens
