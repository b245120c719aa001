"""What the engine reports of itself: plain numbers, which the worker turns into Prometheus metrics (the
engine imports torch and transformers only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Called by the engine thread after each step with the step's wall time in seconds.
StepObserver = Callable[[float], None]
# What Engine.compiled_decode (and EngineStats.decode_compile) can say.
COMPILE_STATES = ("off", "compiling", "on", "failed")


@dataclass(frozen=True)
class EngineStats:
    waiting: int  # requests queued for admission
    running: int  # sequences prefilling or decoding
    running_by_tenant: dict[str, int]  # the fair scheduler's state: admitted sequences per tenant
    kv_slots_used: int  # rows of the batch KV cache holding a decoding sequence
    kv_slots_total: int  # rows it can hold (max_running + fair_headroom)
    reserved_tokens: int  # prompt + max_tokens of the admitted sequences (bounded by max_batch_tokens)
    prefill_tokens: int  # prompt tokens prefilled since start (a counter)
    reused_tokens: int  # prompt tokens whose KV came from the prefix cache instead (a counter)
    prefix_cache_bytes: int  # memory the prefix cache holds
    generated_tokens: int  # tokens sampled since start (a counter)
    steps: int  # scheduler steps run since start (a counter)
    decode_compile: str  # compiled.py's decode step: off, compiling (uncompiled meanwhile), on, failed
