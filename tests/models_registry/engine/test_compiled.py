"""The compiled decode step (models_registry/engine/compiled.py) against the uncompiled one: the same
greedy tokens in float32, the stated bf16 bound in bfloat16, decoding that goes on uncompiled when
compiling or a compiled step fails, and compiled steps kept on disk and loaded by a later start.

Compiling the tiny model's two graphs takes ~15 s on 2 vCPUs; the workers that other tests start keep
it off (tests/workers.py) for that reason, so it is tested here, once per precision.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from models_registry.engine import compiled, fused
from models_registry.engine.engine import Engine, EngineConfig, GenerationRequest
from models_registry.engine.kv_cache import BatchKVCache
from models_registry.engine.loader import load_chat_model
from models_registry.engine.params import SamplingParams
from models_registry.engine.prefill import PaddedBatch
from tests.models_registry.engine.test_engine import QUESTIONS, Collector, reference
from tests.models_registry.engine.test_fast_paths import _prompt
from tests.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def float32_model(tiny_model_dir):  # type: ignore[no-untyped-def]
    """As a worker loads it by default: with its plain weights, which the one-row step reads."""
    return load_chat_model(tiny_model_dir, precision="float32", keep_plain=True)


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """Shared by this module's engines, as by a worker's starts: each precision compiles once."""
    return tmp_path_factory.mktemp("compiled")


def _answers(engine: Engine, prompts: list[list[int]]) -> list[tuple[str, int]]:
    """All prompts at once, each with its own length, so rows leave one by one down to a single row."""
    collectors = [Collector() for _ in prompts]
    for index, (ids, collector) in enumerate(zip(prompts, collectors, strict=True)):
        params = SamplingParams(max_tokens=8 + 10 * index, temperature=0, ignore_eos=True)
        engine.submit(GenerationRequest(f"c{index}", "acme", ids, params, collector))
    answers = []
    for collector in collectors:
        chunks, final = collector.wait()
        answers.append(("".join(chunks), final.completion_tokens))
    return answers


def _engine(model, tokenizer, compile_decode: bool, cache_dir: Path | None = None) -> Engine:  # type: ignore[no-untyped-def]
    config = EngineConfig(
        max_running=4, prefix_cache_bytes=0, compile_decode=compile_decode, compile_cache_dir=cache_dir
    )
    return Engine(model, tokenizer, config).start()


def test_the_compiled_step_gives_the_uncompiled_float32_tokens(float32_model, compile_cache):
    """Rows leave down to one, so both compiled steps run: several rows (packed weights) and one row
    (the plain weights, PackedLinear.row)."""
    model, tokenizer = float32_model
    assert fused.FusedDecoder(model, 8).plain_weights
    prompts = [_prompt(tokenizer, question, system=None) for question in QUESTIONS]
    plain = _engine(model, tokenizer, compile_decode=False)
    try:
        assert plain.compiled_decode == "off"
        expected = _answers(plain, prompts)
    finally:
        plain.shutdown()
    engine = _engine(model, tokenizer, compile_decode=True, cache_dir=compile_cache)
    try:
        assert engine.wait_compiled(timeout_s=600) == "on"
        # Twice: the second wave finds the rows' window further right and the cache grown.
        assert _answers(engine, prompts) == expected
        assert _answers(engine, prompts[::-1]) == _answers_uncompiled(model, tokenizer, prompts[::-1])
        assert engine.compiled_decode == "on"  # no step fell back to the uncompiled one
    finally:
        engine.shutdown()


def _answers_uncompiled(model, tokenizer, prompts: list[list[int]]) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    engine = _engine(model, tokenizer, compile_decode=False)
    try:
        return _answers(engine, prompts)
    finally:
        engine.shutdown()


def test_compiled_bfloat16_decoding_keeps_the_bf16_bound(tiny_model_dir, float32_model, compile_cache):
    """The bound of tests/models_registry/engine/test_fast_paths.py (bf16 against float32), for the
    compiled bf16 step: inductor fuses a layer's elementwise work, so it rounds in other places than
    the uncompiled step. Along float32's 32-token answer fed through the compiled step one token at a
    time, bf16's top choice is float32's at >= 95% of positions and float32's token is never more than
    0.5 nats below it. (Greedy text is not compared with float32's: on the tiny random model's
    near-uniform logits, a bf16 rounding flips a near-tie within the first tokens.) The engine's greedy
    answers are the compiled step's own."""
    model, tokenizer = load_chat_model(tiny_model_dir, precision="bfloat16", keep_plain=True)
    # As many positions as the engine below asks for (its context + 1), so that it finds this step.
    positions = model.config.max_position_embeddings + 1
    decoder, made = compiled.decoder_for(model, fused.FusedDecoder(model, positions), compile_cache)
    assert made
    decoder.warm_up()
    agreeing = total = 0
    prompts = [_prompt(tokenizer, question, system=None) for question in QUESTIONS]
    for question, ids in zip(QUESTIONS, prompts, strict=True):
        expected = reference(float32_model[0], tokenizer, ids, 32)[1]
        _, log_probs = _decode(model, decoder, ids, answer=expected)
        chosen = log_probs.gather(-1, torch.tensor(expected).unsqueeze(-1)).squeeze(-1)
        gap = log_probs.max(-1).values - chosen
        assert gap.max() <= 0.5, question
        agreeing, total = agreeing + int((gap == 0).sum()), total + len(expected)
    assert agreeing >= 0.95 * total
    engine = _engine(model, tokenizer, compile_decode=True, cache_dir=compile_cache)
    try:
        assert engine.wait_compiled(timeout_s=600) == "on"  # the step compiled above, not again
        for question, ids in zip(QUESTIONS, prompts, strict=True):
            collector = Collector()
            params = SamplingParams(max_tokens=16, temperature=0, ignore_eos=True)
            engine.submit(GenerationRequest(question, "acme", ids, params, collector))
            chunks, _ = collector.wait()
            own, _ = _decode(model, decoder, ids, count=16)
            assert "".join(chunks) == tokenizer.decode(own, skip_special_tokens=True), question
    finally:
        engine.shutdown()


@torch.inference_mode()
def _decode(model, decoder, prompt: list[int], answer: list[int] | None = None, count: int = 0):  # type: ignore[no-untyped-def]
    """Prefills `prompt` (transformers' forward, as the engine does), then takes one step at a time
    through `decoder`: along `answer` (teacher-forced) or, without one, its own greedy choices, `count`
    tokens. Returns the tokens and the log-probabilities of each one's position."""
    output = model(input_ids=torch.tensor([prompt]), use_cache=True)
    cache = BatchKVCache(model.config.num_hidden_layers, max_rows=8, max_columns=256)
    cache.add_sequence([(layer.keys, layer.values) for layer in output.cache.layers])
    logits = [output.logits[0, -1]]
    tokens: list[int] = []
    for index in range(len(answer) if answer else count):
        tokens.append(answer[index] if answer else int(logits[-1].argmax()))
        if index + 1 < (len(answer) if answer else count):
            attention_mask, position_ids = cache.prepare_step()
            step = decoder.decode(torch.tensor([[tokens[-1]]]), position_ids, attention_mask, cache)
            logits.append(step[0])
            cache.finish_step()
    return tokens, torch.stack(logits).float().log_softmax(-1)


@pytest.mark.parametrize("failing", ["decode step", "prefill"])
def test_a_failing_compiled_step_falls_back_to_the_uncompiled_one(
    float32_model, monkeypatch, caplog, failing
):
    model, tokenizer = float32_model
    prompts = [_prompt(tokenizer, question, system=None) for question in QUESTIONS]
    expected = _answers_uncompiled(model, tokenizer, prompts)

    def broken(*_: object) -> torch.Tensor:
        raise RuntimeError("torchinductor: c2abc.so: undefined symbol")

    # A model of its own, so that no step compiled by another test is found; nothing compiled, the other
    # graph stands in by its uncompiled forward.
    other, _ = load_chat_model(model.name_or_path, precision="float32")
    monkeypatch.setattr(compiled.CompiledDecoder, "warm_up", lambda self, busy=None: self.ready.set())
    decode = broken if failing == "decode step" else lambda self, *args: self.decoder.decode(*args)
    prefill = broken if failing == "prefill" else lambda self, batch: self.decoder.prefill(batch)
    monkeypatch.setattr(compiled.CompiledDecoder, "decode", decode)
    monkeypatch.setattr(compiled.CompiledDecoder, "prefill", prefill)
    engine = _engine(other, tokenizer, compile_decode=True)
    try:
        assert engine.wait_compiled(timeout_s=60) == "on"
        assert _answers(engine, prompts) == expected
        assert engine.compiled_decode == "failed"
    finally:
        engine.shutdown()
    assert f"compiled {failing} failed (RuntimeError); running uncompiled" in caplog.text
    assert "torchinductor" not in caplog.text  # the exception's type only, never its text


def test_compiling_is_off_unless_asked_and_for_models_without_the_fused_step(tiny_model_dir, float32_model):
    model, tokenizer = float32_model
    assert Engine(model, tokenizer).compiled_decode == "off"
    plain, _ = load_chat_model(tiny_model_dir, precision="float32", prepack=False)
    assert not fused.supports(plain)
    engine = _engine(plain, tokenizer, compile_decode=True)
    try:
        assert engine.compiled_decode == "off"
    finally:
        engine.shutdown()


def test_compiling_waits_while_the_engine_has_work():
    """Where the compiling thread waits (compiled._Yield, a garbage collector callback): after a
    collection in that thread, past its slice, it waits while the engine is busy and goes on at the
    first idle answer; under constant load it waits at most its pause, so compiling still ends; within
    its slice, and in other threads, it asks nothing."""
    answers = iter([True, True, True, False])
    polls: list[bool] = []

    def busy() -> bool:
        polls.append(answer := next(answers))
        return answer

    pace = compiled._Yield(busy, slice_s=0.0, pause_s=60.0)
    pace("start", {})
    assert polls == []  # after a collection, not before it
    pace("stop", {})
    assert polls == [True, True, True, False]

    started = time.monotonic()
    compiled._Yield(lambda: True, slice_s=0.0, pause_s=0.05)("stop", {})
    assert time.monotonic() - started < 5  # the pause bounds the wait, not the load

    asked: list[bool] = []

    def idle() -> bool:
        asked.append(False)
        return False

    compiled._Yield(idle, slice_s=60.0)("stop", {})
    elsewhere = compiled._Yield(idle, slice_s=0.0)
    thread = threading.Thread(target=elsewhere, args=("stop", {}))
    thread.start()
    thread.join()
    assert asked == []
    elsewhere("stop", {})  # in its own thread, past its slice: it asks
    assert asked == [False]


def test_a_compiled_step_is_kept_and_a_later_start_loads_it_with_its_own_weights(
    float32_model, compile_cache, tmp_path
):
    """What a worker's next start does: the same architecture finds the kept step and loads it in
    seconds instead of compiling it. The package holds code, not weights: a model of the same shapes
    and other weights (another seed) decodes with its own weights through it, as its uncompiled step
    does."""
    model, tokenizer = float32_model
    first = compiled.CompiledDecoder(fused.FusedDecoder(model, 256), compile_cache)
    first.warm_up()
    kept = sorted(path.name for path in compile_cache.glob("*.pt2"))
    keys = [first.key(graph) for graph in ("rows", "row", "prefill")]
    assert {name for name in kept if any(key in name for key in keys)} == {
        f"decode-rows-{first.key('rows')}.pt2",
        f"decode-row-{first.key('row')}.pt2",
        f"prefill-{first.key('prefill')}.pt2",
    }

    other, _ = load_chat_model(
        build_tiny_model(tmp_path / "other", seed=1), precision="float32", keep_plain=True
    )
    eager = fused.FusedDecoder(other, 256)
    later = compiled.CompiledDecoder(eager, compile_cache)
    started = time.perf_counter()
    later.warm_up()
    assert later.cached and not later.failed
    assert time.perf_counter() - started < 10  # loaded, not compiled (that takes ~15 s here)
    assert sorted(path.name for path in compile_cache.glob("*.pt2")) == kept  # nothing new

    prompts = [_prompt(tokenizer, question, system=None) for question in QUESTIONS]
    for ids in prompts:
        own, _ = _decode(other, later, ids, count=12)
        uncompiled, _ = _decode(other, eager, ids, count=12)
        assert own == uncompiled
        assert own != _decode(model, first, ids, count=12)[0]  # the other weights' answer, not the first's


def test_the_compiled_prefill_computes_the_uncompiled_one(float32_model, compile_cache):
    """Prompts of different lengths in one padded batch, and a single prompt: the same last logits and
    keys and values (without the padding) as the uncompiled prefill."""
    model, tokenizer = float32_model
    eager = fused.FusedDecoder(model, 256)
    decoder = compiled.CompiledDecoder(eager, compile_cache)
    decoder.warm_up()
    prompts = [_prompt(tokenizer, question, system=None) for question in QUESTIONS]
    for batch in (PaddedBatch.of(prompts), PaddedBatch.of(prompts[:1])):
        logits, states = decoder.prefill(batch)
        expected_logits, expected_states = eager.prefill(batch)
        assert torch.allclose(logits, expected_logits, atol=1e-4)
        for row in range(len(batch.lengths)):
            for got, expected in zip(
                batch.row_states(states, row), batch.row_states(expected_states, row), strict=True
            ):
                assert torch.allclose(got[0], expected[0], atol=1e-4)
                assert torch.allclose(got[1], expected[1], atol=1e-4)


def test_a_damaged_kept_step_is_compiled_again(float32_model, compile_cache, tmp_path, caplog):
    model, tokenizer = float32_model
    compiled.CompiledDecoder(fused.FusedDecoder(model, 256), compile_cache).warm_up()  # kept there
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in compile_cache.glob("*.pt2"):
        (damaged / path.name).write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    decoder = compiled.CompiledDecoder(fused.FusedDecoder(model, 256), damaged)
    decoder.warm_up()
    assert not decoder.cached and not decoder.failed
    assert "a cached decode step did not load" in caplog.text
    ids = _prompt(tokenizer, QUESTIONS[0], system=None)
    assert (
        _decode(model, decoder, ids, count=12)[0]
        == _decode(model, fused.FusedDecoder(model, 256), ids, count=12)[0]
    )
    reloaded = compiled.CompiledDecoder(fused.FusedDecoder(model, 256), damaged)
    reloaded.warm_up()
    assert reloaded.cached  # the damaged files were replaced whole


def test_a_cache_dir_that_cannot_be_written_still_compiles(float32_model, tmp_path, caplog):
    model, tokenizer = float32_model
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    decoder = compiled.CompiledDecoder(fused.FusedDecoder(model, 256), blocked / "compiled")
    decoder.warm_up()
    assert not decoder.failed and not decoder.cached
    assert "compiled decode steps cannot be kept" in caplog.text
    ids = _prompt(tokenizer, QUESTIONS[1], system=None)
    assert (
        _decode(model, decoder, ids, count=12)[0]
        == _decode(model, fused.FusedDecoder(model, 256), ids, count=12)[0]
    )
