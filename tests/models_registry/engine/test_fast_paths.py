"""The engine's speed paths against the plain float32 path: oneDNN-packed weights, bfloat16, and the
per-tenant prefix cache. Same greedy tokens where the arithmetic is float32; a stated bound for bf16."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from models_registry.engine import fused
from models_registry.engine.attention import decode_attention, summed_decode_attention
from models_registry.engine.engine import Engine, EngineConfig, GenerationRequest
from models_registry.engine.kv_cache import BatchKVCache
from models_registry.engine.loader import chat_prompt_ids, load_chat_model
from models_registry.engine.packed import PackedLinear, pack_linear_layers
from models_registry.engine.params import SamplingParams
from models_registry.engine.prefill import PaddedBatch, prefill_cache
from models_registry.engine.prefix_cache import PrefixCache, common_prefix_length
from tests.models_registry.engine.test_engine import QUESTIONS, Collector, reference

GREEDY = SamplingParams(max_tokens=32, temperature=0)
SYSTEM = "You are the support assistant of Example Corp. Answer briefly, cite the handbook. " * 3


@pytest.fixture(scope="module")
def plain(tiny_model_dir):  # type: ignore[no-untyped-def]
    return load_chat_model(tiny_model_dir, precision="float32", prepack=False)


@pytest.fixture(scope="module")
def packed(tiny_model_dir):  # type: ignore[no-untyped-def]
    return load_chat_model(tiny_model_dir, precision="float32")


def _prompt(tokenizer, question: str, system: str | None = SYSTEM) -> list[int]:  # type: ignore[no-untyped-def]
    messages = [{"role": "system", "content": system}] if system else []
    return chat_prompt_ids(tokenizer, [*messages, {"role": "user", "content": question}])


def test_packed_weights_give_the_plain_float32_tokens(plain, packed):
    model, tokenizer = packed
    assert isinstance(model.lm_head, PackedLinear)
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    for question in QUESTIONS:
        ids = _prompt(tokenizer, question, system=None)
        assert reference(model, tokenizer, ids, 32)[1] == reference(plain[0], tokenizer, ids, 32)[1]
    batch = torch.randint(0, 200, (3, 20))
    with torch.inference_mode():
        assert torch.allclose(model(input_ids=batch).logits, plain[0](input_ids=batch).logits, atol=1e-4)


def test_kept_plain_weights_are_the_models_own_tensors():
    """keep_plain costs no copy: each layer keeps the very weight it was made from, and a tied output
    layer the embedding's."""
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    weights = {name: m.weight for name, m in model.named_modules() if type(m) is torch.nn.Linear}
    assert pack_linear_layers(model, keep_plain=True) == len(weights)
    for name, module in model.named_modules():
        if isinstance(module, PackedLinear):
            assert module.plain is not None
            assert module.plain.data_ptr() == weights[name].data_ptr()
    assert model.lm_head.plain.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    pack_linear_layers(packed_only := LlamaForCausalLM(config), keep_plain=False)
    assert all(m.plain is None for m in packed_only.modules() if isinstance(m, PackedLinear))


def test_bfloat16_stays_close_to_float32(tiny_model_dir, plain):
    """bf16 rounds every weight and activation to 8 bits of mantissa, so greedy text drifts from
    float32's after a while. The bound: the first 4 greedy tokens equal on every test prompt; and along
    float32's 32-token answer (teacher-forced), bf16's top choice is float32's at >= 95% of positions,
    float32's token never more than 0.5 nats below bf16's best. (SmolLM2-135M: first divergence after
    1-32 tokens, at near-ties; 97% agreement, worst gap 0.125 nats: bench/RESULTS.md.)"""
    model, tokenizer = load_chat_model(tiny_model_dir, precision="bfloat16")
    assert model.dtype == torch.bfloat16
    agreeing = positions = 0
    for question in QUESTIONS:
        ids = _prompt(tokenizer, question, system=None)
        expected = reference(plain[0], tokenizer, ids, 32)[1]
        assert reference(model, tokenizer, ids, 4)[1] == expected[:4], question
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids + expected])).logits[0, len(ids) - 1 : -1]
        log_probs = logits.float().log_softmax(-1)
        gap = log_probs.max(-1).values - log_probs.gather(-1, torch.tensor(expected).unsqueeze(-1)).squeeze(
            -1
        )
        assert gap.max() <= 0.5, question
        agreeing, positions = agreeing + int((gap == 0).sum()), positions + len(expected)
    assert agreeing >= 0.95 * positions


def _prefilled_cache(model, prompts: list[list[int]]) -> BatchKVCache:  # type: ignore[no-untyped-def]
    """A batch cache holding `prompts` (of different lengths: left padding), as the engine builds it."""
    config = model.config
    cache = BatchKVCache(config.num_hidden_layers, max_rows=8, max_columns=256)
    for ids in prompts:
        with torch.inference_mode():
            output = model(input_ids=torch.tensor([ids]), use_cache=True)
        cache.add_sequence([(layer.keys, layer.values) for layer in output.cache.layers])
    return cache


def test_the_fused_decode_step_computes_transformers_logits(packed):
    model, tokenizer = packed
    assert fused.supports(model)
    prompts = [_prompt(tokenizer, question, system=None) for question in QUESTIONS]
    cache = _prefilled_cache(model, prompts)
    input_ids = torch.tensor([[ids[-1]] for ids in prompts])
    attention_mask, position_ids = cache.prepare_step()
    with torch.inference_mode():
        expected = model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache
        ).logits[:, -1, :]
        # The same step again (prepare_step writes the same column until finish_step).
        attention_mask, position_ids = cache.prepare_step()
        got = fused.FusedDecoder(model, 256).decode(input_ids, position_ids, attention_mask, cache)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)


def _transformers_prefill(model, batch: PaddedBatch, past=None):  # type: ignore[no-untyped-def]
    cache = prefill_cache(model.config, past, len(batch.lengths))
    with torch.inference_mode():
        logits = model(**batch.inputs(torch.device("cpu")), cache=cache, use_cache=True).logits[:, -1, :]
    return logits, [(layer.keys, layer.values) for layer in cache.layers]


def test_the_fused_prefill_computes_transformers_logits_and_cache(packed):
    """Prompts of different lengths, left-padded into one forward, alone and after a shared cached
    prefix: each prompt's last logits and its keys and values (without the padding) as transformers'."""
    model, tokenizer = packed
    decoder = fused.FusedDecoder(model, 1024)
    prompts = [_prompt(tokenizer, question) for question in QUESTIONS]
    shared = common_prefix_length(prompts[0], prompts[1])
    _, prefix = _transformers_prefill(model, PaddedBatch.of([prompts[0][:shared]]))
    for start, past in ((0, None), (shared, prefix)):
        batch = PaddedBatch.of(prompts, start)
        assert len(set(batch.lengths)) > 1  # padding in the batch
        expected_logits, expected_states = _transformers_prefill(model, batch, past)
        logits, states = decoder.prefill(batch, past)
        assert torch.allclose(logits, expected_logits, atol=1e-5)
        for row in range(len(prompts)):
            for (keys, values), (expected_keys, expected_values) in zip(
                batch.row_states(states, row), batch.row_states(expected_states, row), strict=True
            ):
                assert (
                    keys.shape
                    == expected_keys.shape
                    == (1, keys.shape[1], start + batch.lengths[row], keys.shape[3])
                )
                assert torch.allclose(keys, expected_keys, atol=1e-5)
                assert torch.allclose(values, expected_values, atol=1e-5)


def test_the_engine_decodes_through_the_fused_step_with_the_same_tokens(packed, plain):
    model, tokenizer = packed
    prompts = [_prompt(tokenizer, question) for question in QUESTIONS]
    answers = {}
    for fused_decode in (True, False):
        config = EngineConfig(max_running=4, prefix_cache_bytes=0, fused_decode=fused_decode)
        engine = Engine(model, tokenizer, config).start()
        try:
            assert engine.fused_decode is fused_decode
            collectors = [Collector() for _ in prompts]
            for index, (ids, collector) in enumerate(zip(prompts, collectors, strict=True)):
                engine.submit(GenerationRequest(f"f{index}", "acme", ids, GREEDY, collector))
            answers[fused_decode] = [collector.wait() for collector in collectors]
        finally:
            engine.shutdown()
    assert [("".join(c), f.completion_tokens) for c, f in answers[True]] == [
        ("".join(c), f.completion_tokens) for c, f in answers[False]
    ]
    # Only a packed Llama model takes the fused step; others keep transformers' forward.
    assert not fused.supports(plain[0])
    assert not Engine(plain[0], tokenizer).fused_decode


def test_bf16_fused_decoding_stays_close_to_float32(tiny_model_dir, plain):
    """The fused step rounds a bf16 residual add once, not twice: the bf16 bound still holds."""
    model, tokenizer = load_chat_model(tiny_model_dir, precision="bfloat16")
    engine = Engine(model, tokenizer, EngineConfig(max_running=4, prefix_cache_bytes=0)).start()
    try:
        assert engine.fused_decode
        for question in QUESTIONS:
            ids = _prompt(tokenizer, question, system=None)
            expected = reference(plain[0], tokenizer, ids, 4)[1]
            collector = Collector()
            engine.submit(
                GenerationRequest(
                    f"b{len(ids)}", "acme", ids, SamplingParams(max_tokens=4, temperature=0), collector
                )
            )
            chunks, _ = collector.wait()
            assert "".join(chunks) == tokenizer.decode(expected, skip_special_tokens=True), question
    finally:
        engine.shutdown()


def _run(engine: Engine, tenant: str, ids: list[int]) -> tuple[str, int]:
    collector = Collector()
    engine.submit(GenerationRequest(f"r{len(ids)}-{tenant}-{id(collector)}", tenant, ids, GREEDY, collector))
    chunks, final = collector.wait()
    return "".join(chunks), final.completion_tokens


@pytest.fixture(
    params=[(256, "plain"), (16, "plain"), (256, "packed"), (16, "packed")],
    ids=["whole-prompts", "in-chunks", "whole-prompts-fused", "in-chunks-fused"],
)
def engines(plain, packed, request):  # type: ignore[no-untyped-def]
    """With a 16-token chunk budget, long prompts and long rests after a cached prefix go in chunks; a
    packed model prefills through fused.py, a plain one through transformers' forward."""
    chunk, kind = request.param
    model, tokenizer = packed if kind == "packed" else plain
    without = Engine(
        model, tokenizer, EngineConfig(max_running=4, prefill_chunk_tokens=chunk, prefix_cache_bytes=0)
    ).start()
    with_reuse = Engine(model, tokenizer, EngineConfig(max_running=4, prefill_chunk_tokens=chunk)).start()
    assert without.fused_decode is (kind == "packed")
    yield without, with_reuse, tokenizer
    without.shutdown()
    with_reuse.shutdown()


def test_a_shared_system_prompt_is_prefilled_once_with_the_same_answers(engines):
    without, with_reuse, tokenizer = engines
    prompts = [_prompt(tokenizer, question) for question in QUESTIONS]
    shared = common_prefix_length(prompts[0], prompts[1])  # up to the user's first word
    assert shared > len(prompts[0]) / 2
    expected = [_run(without, "acme", ids) for ids in prompts]
    got = [_run(with_reuse, "acme", ids) for ids in prompts]
    assert got == expected
    reused = with_reuse.stats().reused_tokens
    assert reused == (len(prompts) - 1) * shared
    assert with_reuse.stats().prefill_tokens == sum(len(ids) for ids in prompts) - reused
    assert without.stats().reused_tokens == 0


def test_prompts_arriving_together_share_one_forward_after_the_cached_prefix(engines):
    """Once the system prompt is cached, prompts of different lengths arriving at once are prefilled
    in one left-padded forward after it (padding between the prefix and each rest): same answers."""
    without, with_reuse, tokenizer = engines
    questions = [*QUESTIONS, "Why?", "Name three rivers in Europe, please."]
    prompts = [_prompt(tokenizer, question) for question in questions]
    expected = [_run(without, "acme", ids) for ids in prompts]
    assert _run(with_reuse, "acme", prompts[0]) == expected[0]
    collectors = [Collector() for _ in prompts[1:]]
    for index, (ids, collector) in enumerate(zip(prompts[1:], collectors, strict=True)):
        with_reuse.submit(GenerationRequest(f"together-{index}", "acme", ids, GREEDY, collector))
    got = []
    for collector in collectors:
        chunks, final = collector.wait()
        got.append(("".join(chunks), final.completion_tokens))
    assert got == expected[1:]
    shared = common_prefix_length(prompts[0], prompts[1])
    # At least the system turn each; a few more where a question starts like one already cached.
    assert shared * (len(prompts) - 1) <= with_reuse.stats().reused_tokens < (shared + 8) * (len(prompts) - 1)


def test_one_tenants_prefixes_never_serve_another(engines):
    _, with_reuse, tokenizer = engines
    ids = _prompt(tokenizer, "hi")
    first = _run(with_reuse, "acme", ids)
    assert _run(with_reuse, "globex", ids) == first
    assert with_reuse.stats().reused_tokens == 0  # globex prefilled the whole prompt itself
    assert _run(with_reuse, "acme", ids) == first
    assert with_reuse.stats().reused_tokens == len(ids) - 1


def _states(tokens: int, layers: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.randn(1, 2, tokens, 4), torch.randn(1, 2, tokens, 4)) for _ in range(layers)]


def test_the_prefix_cache_stays_within_its_memory_and_drops_the_least_recently_used():
    entry_bytes = 2 * 2 * (2 * 40 * 4) * 4  # layers x (keys, values) x elements x 4 bytes
    cache = PrefixCache(max_bytes=2 * entry_bytes, min_tokens=8)
    first, second, third = ([n] * 40 for n in (1, 2, 3))
    cache.store("t", first, _states(40))
    cache.store("t", second, _states(40))
    assert cache.lookup("t", [*first, 9]) is not None  # first is now the most recently used
    cache.store("t", third, _states(40))
    assert cache.nbytes <= cache.max_bytes and len(cache) == 2
    assert cache.lookup("t", [*second, 9]) is None
    hit = cache.lookup("t", [*first[:30], 7, 7])
    assert hit is not None and hit.tokens == 30 and hit.states[0][0].shape[2] == 30


def test_a_prompt_already_covered_is_not_stored_twice_and_a_short_match_is_not_used():
    cache = PrefixCache(max_bytes=10**9, min_tokens=8)
    prompt = list(range(1, 41))
    cache.store("t", prompt, _states(40))
    cache.store("t", [*prompt[:36], 99, 98], _states(38), reused=36)  # adds 2 tokens: not worth keeping
    assert len(cache) == 1
    assert cache.lookup("t", [*prompt[:5], 0, 0]) is None  # 5 < min_tokens
    assert cache.lookup("t", prompt).tokens == 39  # the last token is always prefilled


@pytest.mark.parametrize("attention", [decode_attention, summed_decode_attention])
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_decode_attentions_match_sdpa(attention, dtype, tolerance):
    """decode_attention (bf16 eager decode steps) and summed_decode_attention (compiled ones) against
    SDPA, over a left-padded batch of views of a larger cache buffer, as the engine hands them over."""
    torch.manual_seed(0)
    keys, values = (torch.randn(6, 3, 64, 16).to(dtype) for _ in range(2))
    key, value = keys[:5, :, 8:40], values[:5, :, 8:40]
    query = torch.randn(5, 9, 1, 16).to(dtype)
    mask = torch.ones(5, 1, 1, 32, dtype=torch.bool)
    mask[1, ..., :7] = False
    mask[3, ..., :20] = False
    expected = torch.nn.functional.scaled_dot_product_attention(
        query.float(), key.float(), value.float(), attn_mask=mask, scale=0.25, enable_gqa=True
    ).transpose(1, 2)
    got = attention(query, key, value, mask, 0.25)
    assert got.shape == (5, 1, 9, 16) and got.dtype == dtype
    assert torch.allclose(got.float(), expected, atol=tolerance)
