"""The continuous-batching engine: one scheduler thread over one model.

Between decode steps the thread admits requests fairly across tenants, prefills them in chunks (a
long prompt does not stall the running batch), moves each prefilled sequence into the running batch's
KV cache, runs one batched decode step, streams each sequence's new text and drops finished or
cancelled sequences. torch releases the GIL inside its kernels, so callers on an asyncio loop in the
same process stay responsive.

What a caller submits and receives is defined in generation.py and exported from here with the engine.
This package imports torch and transformers only (no HTTP, no database), so it can be benchmarked alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models_registry.engine import compiled, fused
from models_registry.engine.detokenizer import IncrementalDetokenizer, StopStringFilter
from models_registry.engine.generation import (
    EngineClosed,
    GenerationEvent,
    GenerationRequest,
    GenerationState,
)
from models_registry.engine.kv_cache import BatchKVCache
from models_registry.engine.loader import eos_token_ids
from models_registry.engine.params import ContextLengthExceeded, InvalidParameter
from models_registry.engine.prefill import PaddedBatch, prefill_cache
from models_registry.engine.prefix_cache import LayerStates, PrefixCache
from models_registry.engine.sampler import RowState, sample_next_tokens
from models_registry.engine.scheduler import FairScheduler, QueueFull
from models_registry.engine.stats import EngineStats, StepObserver

logger = logging.getLogger(__name__)

# The engine's public API: callers import all of it from here.
__all__ = ["Engine", "EngineClosed", "EngineConfig", "GenerationEvent", "GenerationRequest", "QueueFull"]

IDLE_PREFILL_FACTOR = 4  # prefill budget multiplier while no sequence is decoding


@dataclass(frozen=True)
class EngineConfig:
    max_running: int = 32  # sequences decoded together
    fair_headroom: int = 4  # extra slots for tenants below their fair share
    max_queued: int = 256  # waiting requests beyond which submit() raises QueueFull
    max_seq_len: int = 4096  # prompt + completion, capped by the model's own context
    max_batch_tokens: int = 131072  # sum of prompt + max_tokens over admitted sequences (bounds KV memory)
    prefill_chunk_tokens: int = 256  # prompt tokens prefilled per step (bounds how long a step stalls)
    prefix_cache_bytes: int = 256 * 2**20  # KV of recent prompts kept for reuse, per worker (0: off)
    fused_decode: bool = True  # decode steps through fused.py where the model allows it
    compile_decode: bool = False  # ...compiled by AOTInductor (compiled.py), once compiled in the background
    compile_cache_dir: Path | None = None  # compiled steps kept here between starts (None: not kept)


class Engine:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        config: EngineConfig | None = None,
        step_observer: StepObserver | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or EngineConfig()
        self.device = next(model.parameters()).device
        context = getattr(model.config, "max_position_embeddings", None) or self.config.max_seq_len
        self.max_seq_len = min(self.config.max_seq_len, context)
        self.eos_token_ids = eos_token_ids(model, tokenizer)
        self._generator = torch.Generator(device="cpu")
        self._generator.seed()

        self._lock = threading.Condition()
        self._scheduler: FairScheduler[GenerationState] = FairScheduler(
            self.config.max_running, self.config.fair_headroom, self.config.max_queued
        )
        self._cancelled: set[str] = set()
        self._prefilling: deque[GenerationState] = deque()
        self._rows: list[GenerationState] = []  # index == row in the KV cache
        self._reserved_tokens = 0
        self._cache = BatchKVCache(
            num_layers=model.config.num_hidden_layers,
            max_rows=self.config.max_running + self.config.fair_headroom,
            max_columns=self.max_seq_len + 1,
        )
        self._prefixes = PrefixCache(self.config.prefix_cache_bytes)
        self._use_fused = self.config.fused_decode and fused.supports(model)
        self._fused: fused.FusedDecoder | None = None  # made on the engine's thread (`_run`)
        self._compiled: compiled.CompiledDecoder | None = None  # once compiled (`_compile`)
        self._compile_state = "compiling" if self._use_fused and self.config.compile_decode else "off"
        self._compile_ended = threading.Event()
        if self._compile_state == "off":
            self._compile_ended.set()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="llmp-engine", daemon=True)
        self.steps = 0
        self.prefill_tokens = 0  # computed; a reused prefix's tokens count in reused_tokens instead
        self.reused_tokens = 0
        self.generated_tokens = 0
        self._step_observer = step_observer

    @property
    def fused_decode(self) -> bool:
        """Whether decode steps run through fused.py (else transformers' forward)."""
        return self._use_fused

    @property
    def compiled_decode(self) -> str:
        """One of off, compiling (decode steps run uncompiled meanwhile), on, failed."""
        return self._compile_state

    def wait_compiled(self, timeout_s: float | None = None) -> str:
        """Waits until compiling the decode step has ended (if it was asked for); returns the state."""
        self._compile_ended.wait(timeout_s)
        return self._compile_state

    # --- the caller's side (any thread) -----------------------------------------------------------

    def start(self) -> Engine:
        self._thread.start()
        return self

    def submit(self, request: GenerationRequest) -> None:
        """Queues a request. Raises ContextLengthExceeded, InvalidParameter, QueueFull or EngineClosed."""
        prompt_tokens = len(request.prompt_ids)
        if prompt_tokens == 0:
            raise InvalidParameter("messages", "the prompt is empty")
        if prompt_tokens + request.params.max_tokens > self.max_seq_len:
            raise ContextLengthExceeded(prompt_tokens, request.params.max_tokens, self.max_seq_len)
        sequence = GenerationState(
            request=request,
            row_state=RowState.create(request.params, request.prompt_ids),
            detokenizer=IncrementalDetokenizer(self.tokenizer),
            stop_filter=StopStringFilter(request.params.stop),
        )
        with self._lock:
            if self._closed:
                raise EngineClosed("engine is shutting down")
            self._scheduler.enqueue(request.tenant, request.request_id, sequence)
            self._lock.notify()

    def cancel(self, request_id: str) -> None:
        """Stops a request at the next step (its slot is freed); a final event says `cancelled`."""
        with self._lock:
            self._cancelled.add(request_id)
            self._lock.notify()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def load(self) -> dict[str, int]:
        with self._lock:
            return {
                "running": len(self._rows) + len(self._prefilling),
                "waiting": self._scheduler.waiting,
                "capacity": self.config.max_running,
            }

    def stats(self) -> EngineStats:
        with self._lock:
            waiting, by_tenant = self._scheduler.waiting, dict(self._scheduler.running)
            running = len(self._rows) + len(self._prefilling)
        return EngineStats(
            waiting,
            running,
            by_tenant,
            len(self._rows),
            self._cache.max_rows,
            self._reserved_tokens,
            self.prefill_tokens,
            self.reused_tokens,
            self._prefixes.nbytes,
            self.generated_tokens,
            self.steps,
            self._compile_state,
        )

    # --- the engine thread ------------------------------------------------------------------------

    def _run(self) -> None:
        # Made here, not in __init__: its tables are built by torch ops large enough to start an OpenMP
        # pool, and a second pool beside this thread's slows every step (worker/model_thread.py).
        if self._use_fused:
            self._fused = fused.FusedDecoder(self.model, self.max_seq_len + 1)
            if self.config.compile_decode:
                threading.Thread(target=self._compile, name="llmp-engine-compile", daemon=True).start()
        with torch.inference_mode():
            while True:
                with self._lock:
                    while not self._closed and not self._has_work():
                        self._lock.wait()
                    if self._closed:
                        break
                    cancelled, self._cancelled = self._cancelled, set()
                    for request_id in cancelled:
                        queued = self._scheduler.remove(request_id)
                        if queued is not None:
                            queued.send_final("cancelled")
                    admitted = self._scheduler.admit(self._fits)
                for _, sequence in admitted:
                    self._reserved_tokens += sequence.reserved_tokens
                    self._prefilling.append(sequence)
                self._drop_cancelled(cancelled)
                started = time.perf_counter()
                try:
                    decoding = len(self._rows)
                    self._prefill_step()
                    # A batch that has just formed (nothing was decoding) while prompts of the same
                    # burst wait to be prefilled decodes after the next prefill, with them: decoding it
                    # now would delay their first tokens by a step and gain its rows nothing (the gap
                    # before their next token is that prefill either way).
                    if self._rows and (decoding or not self._prefilling):
                        self._decode_step()
                except Exception:  # a model failure must not leave clients waiting forever
                    logger.exception("engine step failed; failing the running requests")
                    self._fail_everything()
                self.steps += 1
                if self._step_observer is not None:
                    self._step_observer(time.perf_counter() - started)
            self._fail_everything(reason="cancelled")
            with self._lock:
                waiting = self._scheduler.drain()
            for sequence in waiting:
                sequence.send_final("cancelled")

    def _compile(self) -> None:
        """Compiles the decode step beside the running engine, which decodes uncompiled meanwhile. The
        compiler's own threads and processes end with it (a second OpenMP pool kept beside the
        engine's would slow every step: worker/model_thread.py)."""
        assert self._fused is not None
        started = time.perf_counter()
        try:
            decoder, made = compiled.decoder_for(self.model, self._fused, self.config.compile_cache_dir)
            if made:
                decoder.warm_up(busy=self._busy)
            else:  # another engine of this model compiles it
                decoder.ready.wait()
                if decoder.failed:
                    raise RuntimeError("compiling failed for another engine")
        except Exception as exc:  # decoding uncompiled is slower, not wrong
            logger.warning("compiling the decode step failed (%s); decoding uncompiled", type(exc).__name__)
            self._compile_state = "failed"
        else:
            self._compiled = decoder
            self._compile_state = "on"
            how = "loaded" if decoder.cached else "compiled"
            logger.info("decode step and prefill %s in %.1f s", how, time.perf_counter() - started)
        finally:
            self._compile_ended.set()

    def _busy(self) -> bool:
        """Whether requests are running or waiting (read without the lock: compiling only paces on it)."""
        return bool(self._rows or self._prefilling or self._scheduler.waiting)

    def _has_work(self) -> bool:
        return bool(self._rows or self._prefilling or self._scheduler.waiting or self._cancelled)

    def _fits(self, sequence: GenerationState) -> bool:
        return self._reserved_tokens + sequence.reserved_tokens <= self.config.max_batch_tokens

    def _drop_cancelled(self, cancelled: set[str]) -> None:
        if not cancelled:
            return
        for sequence in [s for s in self._prefilling if s.request.request_id in cancelled]:
            self._prefilling.remove(sequence)
            self._finish(sequence, "cancelled")
        for row in sorted(
            (r for r, s in enumerate(self._rows) if s.request.request_id in cancelled), reverse=True
        ):
            self._finish_row(row, "cancelled")

    def _prefill_step(self) -> None:
        """Spends this step's prompt-token budget, the least-served tenants' prompts first.

        A prompt that starts like one of its tenant's recent prompts starts from that prompt's cached
        KV (prefix_cache.py) and prefills only the rest. Prompts whose rest fits the remaining budget
        are prefilled together in left-padded forwards, one per level of service (so a newcomer's first
        token does not wait for a flooding tenant's prompts) and cached prefix; a rest longer than
        prefill_chunk_tokens continues in chunks of its own, a shorter one waits for a step with room.
        The budget exists so prefill does not stall the running batch for long; a stall costs less the
        emptier the batch is, so the budget grows as the batch empties (up to IDLE_PREFILL_FACTOR times
        with nothing decoding).
        """
        for sequence in self._prefilling:
            if sequence.prefilled == 0 and sequence.prefix is None:
                sequence.prefix = self._prefixes.lookup(sequence.request.tenant, sequence.request.prompt_ids)
        free_fraction = max(0.0, 1.0 - len(self._rows) / self.config.max_running)
        budget = round(self.config.prefill_chunk_tokens * (1 + (IDLE_PREFILL_FACTOR - 1) * free_fraction))
        running_by_tenant = Counter(s.request.tenant for s in self._rows)
        order = sorted(
            self._prefilling, key=lambda s: running_by_tenant[s.request.tenant]
        )  # stable: FIFO ties
        groups: dict[tuple[int, int, int], list[GenerationState]] = {}
        for sequence in order:
            prefix = sequence.prefix
            remaining = _rest(sequence)
            if sequence.prefill_states is None and remaining <= budget:
                level = running_by_tenant[sequence.request.tenant]
                key = (level, prefix.entry, prefix.tokens) if prefix else (level, -1, 0)
                groups.setdefault(key, []).append(sequence)
                budget -= remaining
        for key in sorted(groups):
            self._prefill_together(groups[key])
        for sequence in order:
            if budget <= 0:
                break
            # Not among the whole prompts above. A long one goes on in chunks; one that a step's budget
            # always holds waits to go whole in the next step, in one forward rather than two.
            if sequence in self._prefilling and (
                sequence.prefill_states is not None or _rest(sequence) > self.config.prefill_chunk_tokens
            ):
                budget -= self._prefill_chunk(sequence, budget)

    def _prefill_together(self, sequences: list[GenerationState]) -> None:
        """One left-padded forward over prompts that share their cached prefix (or have none)."""
        prefix = sequences[0].prefix
        start = prefix.tokens if prefix else 0
        batch = PaddedBatch.of([s.request.prompt_ids for s in sequences], start)
        self.prefill_tokens += sum(batch.lengths)
        logits, states = self._prefill_forward(batch, prefix.states if prefix else None)
        first_tokens = sample_next_tokens(logits, [s.row_state for s in sequences], self._generator)
        for row, sequence in enumerate(sequences):
            sequence.prefilled = start + batch.lengths[row]
            self.reused_tokens += start
        self._start_decoding(sequences, first_tokens, batch, states)

    def _prefill_chunk(self, sequence: GenerationState, budget: int) -> int:
        """Prefills the next chunk of one long prompt; returns the tokens spent."""
        prompt = sequence.request.prompt_ids
        past = sequence.prefill_states
        if past is None:  # its first chunk: after its cached prefix, if any
            past = sequence.prefix.states if sequence.prefix else None
            sequence.prefilled = sequence.reused
            self.reused_tokens += sequence.reused
        start = sequence.prefilled
        chunk = prompt[start : start + budget]
        batch = PaddedBatch.of([prompt[: start + len(chunk)]], start)
        logits, sequence.prefill_states = self._prefill_forward(batch, past)
        sequence.prefilled += len(chunk)
        self.prefill_tokens += len(chunk)
        if sequence.prefilled == len(prompt):
            first_token = sample_next_tokens(logits, [sequence.row_state], self._generator)[0]
            states, sequence.prefill_states = sequence.prefill_states, None
            self._start_decoding([sequence], [first_token], batch, states)
        return len(chunk)

    def _prefill_forward(
        self, batch: PaddedBatch, past: LayerStates | None
    ) -> tuple[torch.Tensor, LayerStates]:
        """Each prompt's last logits and the batch's keys and values (per layer: the shared `past`'s,
        then the padded prompts'): compiled (compiled.py) for prompts with no `past` once compiling has
        ended, else through fused.py where the model allows it, else through transformers."""
        if self._compiled is not None and past is None:
            try:
                return self._compiled.prefill(batch)
            except Exception as exc:  # the same forward uncompiled (it writes nothing in place)
                self._compiled_failed("prefill", exc)
        if self._fused is not None:
            return self._fused.prefill(batch, past)
        cache = prefill_cache(self.model.config, past, len(batch.lengths))
        output = self.model(**batch.inputs(self.device), cache=cache, use_cache=True, logits_to_keep=1)
        return output.logits[:, -1, :], [(layer.keys, layer.values) for layer in cache.layers]

    def _start_decoding(
        self,
        sequences: list[GenerationState],
        first_tokens: list[int],
        batch: PaddedBatch,
        states: LayerStates,
    ) -> None:
        """Streams each prefilled sequence's first token; those it does not end join the running batch
        together (`states`: the batch's keys and values, per layer, as the prefill forward left them)."""
        joining = []
        for row, (sequence, token) in enumerate(zip(sequences, first_tokens, strict=True)):
            request, reused = sequence.request, sequence.reused
            if self._prefixes.keeps(request.prompt_ids, reused):
                self._prefixes.store(
                    request.tenant, request.prompt_ids, batch.row_states(states, row), reused
                )
            if self._accept(sequence, token):
                self._finish(sequence, sequence.finish_reason or "stop")
                # Only once it is done (or decoding, below): if anything before fails, the sequence
                # is still in _prefilling, where the failure handler finds it and tells its client.
                self._prefilling.remove(sequence)
            else:
                joining.append(row)
        if not joining:
            return
        tokens = batch.attention_mask.bool()
        if len(joining) < len(sequences):
            index = torch.tensor(joining)
            states = [(keys.index_select(0, index), values.index_select(0, index)) for keys, values in states]
            tokens = tokens.index_select(0, index)
        self._cache.add_rows(states, tokens)
        for row in joining:
            self._rows.append(sequences[row])
            self._prefilling.remove(sequences[row])

    def _decode_step(self) -> None:
        attention_mask, position_ids = self._cache.prepare_step()
        input_ids = torch.tensor([[s.pending_token] for s in self._rows], device=self.device)
        if self._compiled is not None:
            logits = self._compiled_step(input_ids, position_ids, attention_mask)
        elif self._fused is not None:
            logits = self._fused.decode(input_ids, position_ids, attention_mask, self._cache)
        else:
            logits = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=self._cache,
                use_cache=True,
            ).logits[:, -1, :]
        self._cache.finish_step()
        tokens = sample_next_tokens(logits, [s.row_state for s in self._rows], self._generator)
        finished = [row for row, token in enumerate(tokens) if self._accept(self._rows[row], token)]
        for row in reversed(finished):
            self._finish_row(row, self._rows[row].finish_reason or "stop")

    def _compiled_step(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        assert self._compiled is not None and self._fused is not None
        try:
            return self._compiled.decode(input_ids, position_ids, attention_mask, self._cache)
        except Exception as exc:  # the same step uncompiled (it writes the same cache column)
            self._compiled_failed("decode step", exc)
            return self._fused.decode(input_ids, position_ids, attention_mask, self._cache)

    def _compiled_failed(self, what: str, exc: Exception) -> None:
        """From now on every step and prefill runs uncompiled."""
        logger.warning("the compiled %s failed (%s); running uncompiled", what, type(exc).__name__)
        self._compiled, self._compile_state = None, "failed"

    def _accept(self, sequence: GenerationState, token: int) -> bool:
        """Records a sampled token and streams its text. True when the sequence is done."""
        sequence.generated.append(token)
        self.generated_tokens += 1
        sequence.row_state.record(token)
        sequence.pending_token = token
        params = sequence.request.params
        if token in self.eos_token_ids and not params.ignore_eos:
            sequence.finish_reason = "stop"
            return True
        text = sequence.stop_filter.feed(sequence.detokenizer.push(token))
        if sequence.stop_filter.stopped:
            sequence.send_text(text)
            sequence.finish_reason = "stop"
            return True
        total = len(sequence.request.prompt_ids) + len(sequence.generated)
        if len(sequence.generated) >= params.max_tokens or total >= self.max_seq_len:
            sequence.send_text(text)
            sequence.finish_reason = "length"
            return True
        sequence.send_text(text)
        return False

    def _finish_row(self, row: int, reason: str, error: str | None = None) -> None:
        sequence = self._rows[row]
        moved = self._cache.remove_row(row)
        if moved is not None:
            self._rows[row] = self._rows[moved]
        self._rows.pop()
        self._finish(sequence, reason, error)

    def _finish(self, sequence: GenerationState, reason: str, error: str | None = None) -> None:
        self._reserved_tokens -= sequence.reserved_tokens
        with self._lock:
            self._scheduler.release(sequence.request.tenant)
        sequence.send_final(reason, error)

    def _fail_everything(self, reason: str = "error") -> None:
        error = None if reason == "cancelled" else "the model failed while generating"
        while self._rows:
            self._finish_row(len(self._rows) - 1, reason, error)
        while self._prefilling:
            self._finish(self._prefilling.popleft(), reason, error)


def _rest(sequence: GenerationState) -> int:
    """The prompt tokens a sequence has left to prefill (after its cached prefix, if any)."""
    prefix = sequence.prefix
    return len(sequence.request.prompt_ids) - (prefix.tokens if prefix else sequence.prefilled)
