"""One generation as the engine sees it: what a caller submits, the events it gets back, and the
engine's bookkeeping for a request between admission and its final event."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from models_registry.engine.detokenizer import IncrementalDetokenizer, StopStringFilter
from models_registry.engine.params import SamplingParams
from models_registry.engine.prefix_cache import LayerStates, PrefixHit
from models_registry.engine.sampler import RowState

logger = logging.getLogger(__name__)


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
    prefix: PrefixHit | None = None  # the cached start of its prompt, found before its prefill
    prefill_states: LayerStates | None = None  # a long prompt's KV so far, while prefilled in chunks
    pending_token: int | None = None  # sampled, not yet fed through the model
    finish_reason: str | None = None

    @property
    def reused(self) -> int:
        """Prompt tokens whose KV comes from the prefix cache instead of this prompt's prefill."""
        return self.prefix.tokens if self.prefix is not None else 0

    @property
    def reserved_tokens(self) -> int:
        return len(self.request.prompt_ids) + self.request.params.max_tokens

    def send_text(self, text: str) -> None:
        if text:  # with running counts, so a stream cut short is billed for what it produced
            self._send(
                GenerationEvent(
                    request_id=self.request.request_id,
                    text=text,
                    prompt_tokens=len(self.request.prompt_ids),
                    completion_tokens=len(self.generated),
                )
            )

    def send_final(self, reason: str, error: str | None = None) -> None:
        """The last event: the text held back (an incomplete character, a possible stop string) unless
        the answer was cancelled or failed, and the final counts."""
        tail = ""
        if reason not in ("cancelled", "error"):
            tail = self.stop_filter.feed(self.detokenizer.flush()) + self.stop_filter.flush()
        self._send(
            GenerationEvent(
                request_id=self.request.request_id,
                text=tail,
                finished=True,
                finish_reason=reason,
                prompt_tokens=len(self.request.prompt_ids),
                completion_tokens=len(self.generated),
                error=error,
            )
        )

    def _send(self, event: GenerationEvent) -> None:
        try:
            self.request.sink(event)
        except Exception:  # a broken consumer must not take the engine down
            logger.exception("event sink of request %s failed", self.request.request_id)
