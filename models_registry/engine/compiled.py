"""The fused decode step (fused.py) compiled by inductor, torch.compile's CPU backend.

What compiling buys: inductor fuses each layer's small operators (the RMSNorms, rotary embeddings,
SiLU and product, the casts around them) into a few C++ loops, and with `cpp_wrapper` the step runs as
one C++ function instead of ~900 Python-dispatched operators. The matrix work stays oneDNN's: under
`freezing` the packed weights are constants of the graph, the very tensors the eager model holds (no
copy). Measured on 2 vCPUs, SmolLM2-135M, a step alone, alternated with the eager fused step in one
process (bench/RESULTS.md, engine): float32 36.6 -> 29.8 ms at 1 row, 43.7 -> 35.6 at 8, 81.4 -> 71.7
at 32; bfloat16 27.0 -> 18.3, 31.1 -> 21.9, 53.3 -> 42.0.

What it costs, and how that is bounded:
- Compiling takes minutes on a small CPU (SmolLM2's two graphs: 3-5 minutes on 2 vCPUs), so it happens
  on a thread of its own after the engine starts: the engine decodes with the eager step until the
  compiled one is ready. It cannot be cached on disk: inductor's graph cache refuses graphs whose
  constants are oneDNN tensors ("mkldnn tensors unpickleable"), and the C++ it compiles (a fifth to a
  quarter of the time) names each constant by its object's hash, so a new process never finds it in
  the code cache. Packing the weights inside the graph instead would hold a second copy of every
  weight beside the one prefill uses.
- Shapes are dynamic, so one graph serves every batch size and window; torch specializes sizes and
  integers equal to 0 or 1, so the window's bounds are passed shifted (never 0 or 1) and a 1-row batch
  gets the second and last graph. Both are compiled at warm-up.
- Compiling beside a serving engine shares one interpreter with it. Each of the engine's eager
  operators releases the GIL and must win it back from the compiler, which computes in Python: measured
  on 2 vCPUs, bf16, requests of 32 tokens during the first two minutes of compiling, 97-116 s a request
  with stalls of 14-17 s (the switch interval at 0.1 ms: still ~0.4 s a token; lowering the compiling
  thread's CPU priority: no better). So compiling yields (`_Yield`): while the engine has work it waits,
  running a 20 ms slice in every ~220 ms, so that it still ends under constant load (at about a tenth of
  its speed). Measured so: 1.9-4.1 s a request, first token within 0.5 s, no gap over 0.64 s.
- One compiled step per model in the process, whichever engine asks (a benchmark starts several).
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch._inductor.config as inductor_config
import torch.fx.experimental._config as shape_config
from transformers import PreTrainedModel

from models_registry.engine.fused import FusedDecoder
from models_registry.engine.kv_cache import BatchKVCache

# Added to the window's bounds on the way in and taken off inside: a bound of 0 or 1 would otherwise
# get a graph of its own (torch specializes those values).
_SHIFT = 2
# Given as settings, not as torch.compile's `options`, which do not reach freezing (measured: the packed
# weights then stay graph inputs, which inductor cannot lower).
_INDUCTOR = {
    "freezing": True,  # weights are constants: oneDNN's packed ones, used as they are
    "cpp_wrapper": True,  # the step as one C++ function, not Python calling kernels
}
# While the engine is busy, compiling runs _SLICE_S, then waits until the engine is idle, at most _PAUSE_S.
_SLICE_S = 0.02
_PAUSE_S = 0.2
_fake_registered = False
_fake_lock = threading.Lock()
_lock = threading.Lock()
_compiled: weakref.WeakKeyDictionary[PreTrainedModel, CompiledDecoder] = weakref.WeakKeyDictionary()


class _Step(torch.nn.Module):
    def __init__(self, model: PreTrainedModel, decoder: FusedDecoder) -> None:
        super().__init__()
        # A submodule, so that tracing finds the packed weights `decoder` calls as the model's buffers,
        # which freezing turns into constants (reached only through `decoder`, they would be inputs).
        self.model = model
        self.decoder = decoder

    def forward(self, *inputs: object) -> torch.Tensor:
        """FusedDecoder.step's inputs, the window's bounds shifted."""
        *tensors, start, end = inputs
        return self.decoder.step(*tensors, start - _SHIFT, end - _SHIFT)  # type: ignore[arg-type, operator]


class CompiledDecoder:
    """FusedDecoder.decode through inductor; `warm_up` compiles it (minutes), `decode` runs it."""

    def __init__(self, model: PreTrainedModel, decoder: FusedDecoder) -> None:
        _register_fake()
        self.decoder = decoder
        self._step = torch.compile(_Step(model, decoder), dynamic=True, fullgraph=True)
        self.ready = threading.Event()  # set when warm_up has ended, compiled or `failed`
        self.failed = False

    def warm_up(self, busy: Callable[[], bool] | None = None) -> None:
        """Compiles both graphs (several rows, one row) on made-up inputs shaped like the engine's;
        yielding to the engine whenever `busy()` says it has work."""
        pace = _Yield(busy or (lambda: False))
        gc.callbacks.append(pace)
        try:
            self._run_samples()
        except Exception:
            self.failed = True
            raise
        finally:
            gc.callbacks.remove(pace)
            self.ready.set()

    @torch.inference_mode()
    def _run_samples(self) -> None:
        # Compiling while serving is what warm-up exists to avoid: past it, a call no graph fits runs
        # the step uncompiled (the stance is process-wide; during a warm-up it is compile as usual).
        with (
            torch.compiler.set_stance("default"),
            # Inductor's settings are per thread (as set_stance is not), so they go around the compiling.
            inductor_config.patch(_INDUCTOR),
            # Sizes that happen to be equal are not the same size: else a sample batch of 2 rows in a
            # model with 2 KV heads compiles a graph for 2 rows only.
            shape_config.patch(use_duck_shape=False),
        ):
            self._compile_graphs()
        torch.compiler.set_stance("eager_on_recompile")

    def _compile_graphs(self) -> None:
        embed = self.decoder.embed
        for rows in (2, 1):
            cache = BatchKVCache(len(self.decoder.layers), max_rows=8, max_columns=64)
            shape = (1, self.decoder.kv_heads, 5, self.decoder.head_dim)
            for _ in range(rows):
                sample = torch.zeros(shape, dtype=embed.dtype, device=embed.device)
                cache.add_sequence([(sample, sample)] * len(self.decoder.layers))
            attention_mask, position_ids = cache.prepare_step()
            input_ids = torch.zeros(rows, 1, dtype=torch.long, device=embed.device)
            self.decode(input_ids, position_ids, attention_mask, cache)

    def decode(self, *inputs: Any) -> torch.Tensor:
        """FusedDecoder.decode, with the same inputs (ids, position ids, mask, cache), compiled."""
        *tensors, cache = inputs
        keys, values = cache.buffers()
        return self._step(*tensors, keys, values, cache.start + _SHIFT, cache.end + _SHIFT)


class _Yield:
    """Where compiling waits: a garbage collector callback. Compiling allocates all the time, so the
    collector runs every few milliseconds in its thread, and a callback costs nothing between runs (a
    trace function, called at every Python call, made compiling over twice as slow). Past a slice of
    compiling, the compiling thread waits there while the engine is busy, at most `pause_s`; other
    threads' collections pass."""

    def __init__(self, busy: Callable[[], bool], slice_s: float = _SLICE_S, pause_s: float = _PAUSE_S):
        self.busy, self.slice_s, self.pause_s = busy, slice_s, pause_s
        self.thread = threading.get_ident()
        self.running_since = time.monotonic()

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase != "stop" or threading.get_ident() != self.thread:
            return
        now = time.monotonic()
        if now - self.running_since >= self.slice_s:
            while self.busy() and time.monotonic() - now < self.pause_s:
                time.sleep(0.01)
            self.running_since = time.monotonic()


def decoder_for(model: PreTrainedModel, decoder: FusedDecoder) -> tuple[CompiledDecoder, bool]:
    """The model's compiled step (made from `decoder` unless one with as many positions exists), and
    whether this call made it: the caller that made it warms it up."""
    with _lock:
        existing = _compiled.get(model)
        if existing is not None and existing.decoder.positions >= decoder.positions:
            return existing, False
        made = _compiled[model] = CompiledDecoder(model, decoder)
        return made, True


def _register_fake() -> None:
    """torch ships a shape function (fake kernel) for oneDNN's linear but not for its fused-add
    variant, which tracing needs; inductor itself knows how to call both."""
    global _fake_registered
    with _fake_lock:
        if _fake_registered:
            return

        @torch.library.register_fake("mkldnn::_linear_pointwise.binary")
        def _linear_add(
            x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, attr: str
        ) -> torch.Tensor:
            return x.new_empty((*x.shape[:-1], weight.shape[0]))

        _fake_registered = True
