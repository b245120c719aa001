"""The fused decode step and prefill (fused.py) compiled ahead of time by AOTInductor, and kept on disk.

What compiling buys: inductor fuses each layer's small operators (the RMSNorms, rotary embeddings,
SiLU and product, the casts around them) into a few C++ loops, and the step runs as one C++ function
instead of ~900 Python-dispatched operators. The matrix work stays oneDNN's, over the model's own packed
weights. Measured on 2 vCPUs, SmolLM2-135M, a step alone, alternated in one process with the eager fused
step and with the same step under torch.compile (what this module did before; bench/RESULTS.md,
engine): float32 19.2 -> 15.2 ms at 1 row (torch.compile 17.5), 24.9 -> 20.2 at 8 (22.4), 48.3 -> 43.3
at 32 (45.7); bfloat16 13.3 -> 8.2 (10.4), 18.8 -> 13.2 (15.5), 36.6 -> 29.3 (32.0).

Where the model kept its plain weights (packed.py's keep_plain, LLMP_ENGINE_PLAIN_WEIGHTS), the one-row
step's projections are sums of products over them (PackedLinear.row), which inductor turns into loops
that read each weight once at memory speed; oneDNN's packed kernels read a weight for a single row at
about half of it. Measured on 2 Zen 4 vCPUs, float32 SmolLM2, the one-row step alone: 39.5 -> 25.2 ms
(median), logits within 5e-5 (bench/RESULTS.md, engine, sixth round).

The several-row step computes attention as sums of products (attention.summed_decode_attention), which
inductor makes loops over each row's cached window, instead of calling SDPA's kernel (one small MKL
product per row and KV head). Measured on 2 Zen 5 vCPUs, SmolLM2, the step alone, alternated: float32
8 rows 0.93-0.96x the time, 32 rows 0.88-0.91x; bfloat16 0.93-0.97x and 0.87-0.94x; one row unchanged
(it keeps SDPA).

The prefill of prompts with no cached prefix is a third graph, the same layers over the prompts' own
tokens (FusedDecoder.prefill_tokens), for any number of prompts and lengths; a prefill after a cached
prefix, or a long prompt's later chunks, run uncompiled. Measured alone on an Intel 2-vCPU host, float32,
alternated, median of 10: 32 prompts (1,562 tokens) 2.14 -> 1.91 s, 8 prompts 0.53 -> 0.48 s, one
prompt 0.143 -> 0.109 s.

How, and what it costs:
- The step is exported (torch.export) and compiled by AOTInductor into a package of code only: the
  weights stay out of it (`package_constants_in_so` off) and are handed to the loaded step as they are,
  the very tensors the eager model holds (no copy; FusedDecoder names them). So a package depends on the
  model's shapes, not its weights, and is kept in `cache_dir` under a key of those shapes, the torch
  version, the CPU and this code: a later start (or another worker of the same architecture) loads it in
  about a second instead of compiling for minutes.
- Compiling takes minutes on a small CPU (SmolLM2's two decode graphs: 89 s in float32, 111 s in
  bfloat16 on 2 Zen 5 vCPUs, 200-230 s in float32 on 2 Intel ones; the prefill graph ~95 s more there;
  torch.compile took 158 and 169 s for the decode step, at every start), so it happens on a thread of
  its own after the engine starts: the engine runs the eager step and prefill until all are ready.
- Shapes are dynamic, so one graph serves every batch size and window; export takes sizes from 2 up, so
  a 1-row batch has a second graph, and the window's start goes in as the length of a byte tensor (an
  integer input did not survive AOTInductor), shifted by 2. Sizes below 2 (a cache of one row) run the
  eager step.
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
import hashlib
import json
import logging
import os
import platform
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch._inductor
import torch.fx.experimental._config as shape_config
from transformers import PreTrainedModel

from models_registry.engine import attention, fused, packed
from models_registry.engine.fused import FusedDecoder
from models_registry.engine.kv_cache import BatchKVCache
from models_registry.engine.prefill import PaddedBatch
from models_registry.engine.prefix_cache import LayerStates

logger = logging.getLogger(__name__)
# torch.export's own use of a deprecated pytree check, printed at each compile: not ours to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)

# Added to the window's start on the way in and taken off inside: export takes sizes from 2 up.
_SHIFT = 2
# Code only: the loaded step is given the model's own tensors.
_INDUCTOR = {"aot_inductor.package_constants_in_so": False}
# The code a package is made from: a change to any of it is a new key.
_SOURCES = (fused, attention, packed)
# A decode step of several rows, of one row (export takes sizes from 2 up), a prefill.
_GRAPHS = ("rows", "row", "prefill")
# While the engine is busy, compiling runs _SLICE_S, then waits until the engine is idle, at most _PAUSE_S.
_SLICE_S = 0.02
_PAUSE_S = 0.2
_fake_registered = False
_fake_lock = threading.Lock()
_lock = threading.Lock()
_compiled: weakref.WeakKeyDictionary[PreTrainedModel, CompiledDecoder] = weakref.WeakKeyDictionary()


class _Step(torch.nn.Module):
    """FusedDecoder.step as export takes it: the window's start as a tensor's length, its end from the
    mask's width (the window and the new column)."""

    def __init__(
        self, decoder: FusedDecoder, plain_row: bool = False, summed_attention: bool = False
    ) -> None:
        super().__init__()
        self.decoder = decoder
        self.plain_row = plain_row
        self.summed_attention = summed_attention

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        start: torch.Tensor,
    ) -> torch.Tensor:
        first = start.shape[0] - _SHIFT
        last = first + attention_mask.shape[1] - 1
        return self.decoder.step(
            input_ids,
            position_ids,
            attention_mask,
            keys,
            values,
            first,
            last,
            self.plain_row,
            self.summed_attention,
        )


class _Prefill(torch.nn.Module):
    """FusedDecoder.prefill_tokens as export takes it: prompts with no cached prefix."""

    def __init__(self, decoder: FusedDecoder) -> None:
        super().__init__()
        self.decoder = decoder  # the same name as _Step's: both graphs take the same tensors

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        last: torch.Tensor,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        return self.decoder.prefill_tokens(input_ids, position_ids, tokens, mask, last)


class CompiledDecoder:
    """FusedDecoder.decode and FusedDecoder.prefill (without a cached prefix) through AOTInductor;
    `warm_up` loads or compiles them, `decode` and `prefill` run them."""

    def __init__(self, decoder: FusedDecoder, cache_dir: Path | None = None) -> None:
        _register_fake()
        self.decoder = decoder
        self.cache_dir = cache_dir
        self.ready = threading.Event()  # set when warm_up has ended, compiled or `failed`
        self.failed = False
        self.cached = False  # whether every graph came from cache_dir
        self._runners: dict[str, Any] = {}
        self._starts = torch.empty(0, dtype=torch.uint8)

    def warm_up(self, busy: Callable[[], bool] | None = None) -> None:
        """Loads the graphs (a decode step of several rows, of one row, a prefill) from `cache_dir`,
        compiling (and keeping) those not there; compiling yields to the engine whenever `busy()` says
        it has work."""
        pace = _Yield(busy or (lambda: False))
        gc.callbacks.append(pace)
        try:
            loaded = [self._load_or_compile(graph) for graph in _GRAPHS]
            self.cached = all(loaded)
        except Exception:
            self.failed = True
            raise
        finally:
            gc.callbacks.remove(pace)
            self.ready.set()

    def decode(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: BatchKVCache,
    ) -> torch.Tensor:
        """FusedDecoder.decode, with the same inputs, compiled."""
        keys, values = cache.buffers()
        start = cache.start + _SHIFT
        if min(keys[0].shape[0], keys[0].shape[2], attention_mask.shape[1]) < 2:  # not exported for
            return self.decoder.decode(input_ids, position_ids, attention_mask, cache)
        if start > self._starts.shape[0]:
            self._starts = torch.empty(max(start, 2 * self._starts.shape[0]), dtype=torch.uint8)
        runner = self._runners["row" if input_ids.shape[0] == 1 else "rows"]
        inputs = [input_ids, position_ids, attention_mask, *keys, *values, self._starts[:start]]
        return runner.boxed_run(inputs)[0]

    def prefill(self, batch: PaddedBatch) -> tuple[torch.Tensor, LayerStates]:
        """FusedDecoder.prefill of prompts with no cached prefix, compiled."""
        inputs = fused.prefill_inputs(batch)
        if min(inputs[0].shape[0], batch.input_ids.shape[1]) < 2:  # not exported for
            return self.decoder.prefill(batch)
        logits, *states = self._runners["prefill"].boxed_run(list(inputs))
        layers = len(self.decoder.stack)
        return logits, list(zip(states[:layers], states[layers:], strict=True))

    def _load_or_compile(self, graph: str) -> bool:
        """Puts the graph's runner in place; whether it came from the cache."""
        if self.cache_dir is None:
            with tempfile.TemporaryDirectory() as scratch:
                self._runners[graph] = self._load(self._compile(graph, Path(scratch) / "step.pt2"))
            return False
        name = "prefill" if graph == "prefill" else f"decode-{graph}"
        path = self.cache_dir / f"{name}-{self.key(graph)}.pt2"
        if path.exists():
            try:
                self._runners[graph] = self._load(path)
                return True
            except Exception as exc:  # another torch's or a torn file: compile it again
                logger.warning("a cached decode step did not load (%s); compiling it", type(exc).__name__)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            scratch = tempfile.TemporaryDirectory(dir=self.cache_dir)
        except OSError as exc:  # a read-only data dir: compile all the same, keep nothing
            logger.warning(
                "compiled decode steps cannot be kept in %s (%s)", self.cache_dir, type(exc).__name__
            )
            self.cache_dir = None
            return self._load_or_compile(graph)
        with scratch:
            package = self._compile(graph, Path(scratch.name) / path.name)
            self._runners[graph] = self._load(package)
            os.replace(package, path)  # whole or not at all, for a worker starting beside this one
        return False

    def key(self, graph: str) -> str:
        """What the compiled code depends on: the tensors' names, shapes and dtypes, the step's
        numbers, this code, torch, and the CPU the C++ is compiled for."""
        decoder = self.decoder
        facts = {
            "graph": graph,
            "tensors": [
                [name, list(t.shape), str(t.dtype), t.is_mkldnn] for name, t in _tensors(decoder).items()
            ],
            "step": [decoder.heads, decoder.kv_heads, decoder.head_dim, decoder.eps, decoder.scaling],
            "code": [
                hashlib.sha256(Path(module.__file__ or "").read_bytes()).hexdigest()
                for module in (*_SOURCES,)
            ]
            + [hashlib.sha256(Path(__file__).read_bytes()).hexdigest()],
            "torch": torch.__version__,
            "cpu": [platform.machine(), _cpu_flags(), str(torch._inductor.cpu_vec_isa.pick_vec_isa())],
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:24]

    @torch.inference_mode()
    def _compile(self, graph: str, target: Path) -> Path:
        if graph == "prefill":
            return self._compile_prefill(target)
        # A sample of typical sizes: inductor sizes its loops' threading by it (from a 3-row sample of 5
        # positions it ran some of attention's loops on one thread).
        rows, length = (1 if graph == "row" else 16), min(127, self.decoder.positions - 2)
        cache = BatchKVCache(len(self.decoder.stack), max_rows=rows, max_columns=2 * length)
        sample = torch.zeros(
            (1, self.decoder.kv_heads, length, self.decoder.head_dim), dtype=self.decoder.dtype
        )
        for _ in range(rows):
            cache.add_sequence([(sample, sample)] * len(self.decoder.stack))
        attention_mask, position_ids = cache.prepare_step()
        keys, values = cache.buffers()
        inputs = (
            torch.zeros(rows, 1, dtype=torch.long),
            position_ids,
            attention_mask,
            keys,
            values,
            torch.empty(cache.start + _SHIFT, dtype=torch.uint8),
        )
        auto = torch.export.Dim.AUTO
        batch = auto if graph == "rows" else torch.export.Dim.STATIC
        cache_shape = [{0: auto, 2: auto}] * len(keys)
        shapes = ({0: batch}, {0: batch}, {0: batch, 1: auto}, cache_shape, cache_shape, {0: auto})
        # The one-row step reads the plain weights where the model kept them (PackedLinear.row). The
        # several-row step's attention is sums of products; one row keeps SDPA (or decode_attention in
        # bf16): inductor spreads attention's loops over rows, so one row's would run on one thread
        # (bf16, one row: 7.5 -> 9.7 ms a step).
        step = _Step(
            self.decoder,
            plain_row=graph == "row" and self.decoder.plain_weights,
            summed_attention=graph == "rows",
        )
        return _package(step, inputs, shapes, target)

    def _compile_prefill(self, target: Path) -> Path:
        # Three prompts of different lengths (padding in the sample); any number of prompts from 1 up.
        sample = PaddedBatch.of([[1] * 5, [2] * 7, [3] * 6])
        tokens = torch.export.Dim("tokens", min=2)
        rows = torch.export.Dim("rows", min=1)
        width = torch.export.Dim("width", min=2)
        shapes = ({0: tokens}, {0: tokens}, {0: tokens}, {0: rows, 2: width, 3: width}, {0: rows})
        return _package(_Prefill(self.decoder), fused.prefill_inputs(sample), shapes, target)

    def _load(self, package: Path) -> Any:
        runner = torch._inductor.aoti_load_package(str(package))
        tensors = _tensors(self.decoder)
        # The step's own tensors, used in place (the caller keeps them alive: the decoder holds them).
        runner.load_constants(
            {name: tensors[name] for name in runner.get_constant_fqns()},
            check_full_update=True,
            user_managed=True,
        )
        return runner.loader


def _package(module: torch.nn.Module, inputs: tuple[Any, ...], shapes: tuple[Any, ...], target: Path) -> Path:
    """`module` exported over `inputs` with `shapes` dynamic, compiled into a code-only package."""
    # Sizes that happen to be equal are not the same size (else a 2-row sample in a model with 2 KV
    # heads would be exported for 2 rows only).
    with shape_config.patch(use_duck_shape=False):
        exported = torch.export.export(module, inputs, dynamic_shapes=shapes, strict=False)
    return Path(
        torch._inductor.aoti_compile_and_package(
            exported, package_path=str(target), inductor_configs=_INDUCTOR
        )
    )


def _tensors(decoder: FusedDecoder) -> dict[str, torch.Tensor]:
    """The decoder's tensors under the names export gives them (as _Step's `decoder`)."""
    step = _Step(decoder)
    return dict(step.named_parameters(remove_duplicate=False)) | dict(
        step.named_buffers(remove_duplicate=False)
    )


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    lines = [line for line in text.splitlines() if line.startswith(("flags", "model name"))]
    return hashlib.sha256("\n".join(sorted(set(lines))).encode()).hexdigest()


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


def decoder_for(
    model: PreTrainedModel, decoder: FusedDecoder, cache_dir: Path | None = None
) -> tuple[CompiledDecoder, bool]:
    """The model's compiled step (made from `decoder` unless one with as many positions exists), and
    whether this call made it: the caller that made it warms it up."""
    with _lock:
        existing = _compiled.get(model)
        if existing is not None and existing.decoder.positions >= decoder.positions:
            return existing, False
        made = _compiled[model] = CompiledDecoder(decoder, cache_dir)
        return made, True


def _register_fake() -> None:
    """torch ships a shape function (fake kernel) for oneDNN's linear but not for its fused-add
    variant, which export needs; inductor itself knows how to call both."""
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
