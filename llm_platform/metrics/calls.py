"""One model call's metrics, recorded once when it ends, however it ends: a chat turn (its settlement
ends it, or its refusal) or an embeddings request. `ModelCall` is made when the call starts and told
what happens (the model it resolved to, its first token, a failure); ending it is a handful of dict
lookups and increments."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from llm_platform.core.errors import PlatformError
from llm_platform.metrics.api import ApiMetrics


def outcome_of(error: BaseException) -> str:
    """The `outcome` label of a call that ended in `error`."""
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"  # the client went away
    if not isinstance(error, PlatformError):
        return "unavailable"  # a failure of ours, answered as a 500
    status = error.status_code
    if status == 429:
        return "quota" if error.code == "insufficient_quota" else "rate_limited"
    if status >= 500:
        return "model_error" if error.code == "model_error" else "unavailable"
    return "client_error"


@dataclass(slots=True)
class ModelCall:
    metrics: ApiMetrics
    tenant: str  # the slug: what an operator reads on a dashboard
    endpoint: str  # the route's path template
    model: str = ""  # "" until the asked model is resolved (an unknown one stays "")
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    outcome: str | None = None  # a failure noted before the call ends
    ended: bool = False

    def first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def failed(self, error: BaseException) -> None:
        """Notes why the call is failing; the first reason given is the one counted."""
        if self.outcome is None:
            self.outcome = outcome_of(error)

    def refused(self, error: BaseException) -> None:
        """Ended before any model work: a refusal, or a failure to dispatch."""
        self.failed(error)
        self.interrupted(0, 0)

    def answered(self, prompt_tokens: int, completion_tokens: int) -> None:
        """A whole answer from the model: counted ok, with its tokens and latencies."""
        if self.ended:
            return
        self.ended = True
        now = time.perf_counter()
        metrics, model = self.metrics, self.model
        metrics.requests[(self.tenant, model, self.endpoint, "ok")].inc()
        self._tokens(prompt_tokens, completion_tokens)
        metrics.request_duration[(model,)].observe(now - self.started)
        first = self.first_token_at
        if first is not None:
            metrics.time_to_first_token[(model,)].observe(first - self.started)
            if completion_tokens > 1:
                metrics.time_per_output_token[(model,)].observe((now - first) / (completion_tokens - 1))

    def served_from_cache(self, cached_tokens: int) -> None:
        """Answered by the response cache: ok, its tokens counted as cached; no model latency."""
        if self.ended:
            return
        self.ended = True
        self.metrics.requests[(self.tenant, self.model, self.endpoint, "ok")].inc()
        if cached_tokens:
            self.metrics.tokens[(self.tenant, self.model, "cached")].inc(cached_tokens)

    def interrupted(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Ended early (a failure noted before, or the client went away): the tokens it was billed."""
        if self.ended:
            return
        self.ended = True
        outcome = self.outcome or "cancelled"
        self.metrics.requests[(self.tenant, self.model, self.endpoint, outcome)].inc()
        self._tokens(prompt_tokens, completion_tokens)

    def _tokens(self, prompt_tokens: int, completion_tokens: int) -> None:
        tokens, tenant, model = self.metrics.tokens, self.tenant, self.model
        if prompt_tokens:
            tokens[(tenant, model, "prompt")].inc(prompt_tokens)
        if completion_tokens:
            tokens[(tenant, model, "completion")].inc(completion_tokens)
