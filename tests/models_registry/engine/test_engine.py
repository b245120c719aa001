"""The batching engine on a tiny random Llama: batched output equals one generate() per request."""

from __future__ import annotations

import queue
import threading
import uuid

import pytest
import torch

from models_registry.engine.engine import Engine, EngineConfig, GenerationRequest
from models_registry.engine.loader import chat_prompt_ids, load_chat_model
from models_registry.engine.params import ContextLengthExceeded, InvalidParameter, SamplingParams
from models_registry.engine.scheduler import QueueFull

QUESTIONS = [
    "hi",
    "What is the capital of France?",
    "Tell me a long story about dragons and their gold.",
    "x" * 90,
]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):  # type: ignore[no-untyped-def]
    return load_chat_model(tiny_model_dir)


@pytest.fixture
def engine(model_and_tokenizer):  # type: ignore[no-untyped-def]
    model, tokenizer = model_and_tokenizer
    running = Engine(
        model, tokenizer, EngineConfig(max_running=4, fair_headroom=1, prefill_chunk_tokens=16)
    ).start()
    yield running
    running.shutdown()


class Collector:
    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()

    def __call__(self, event) -> None:  # type: ignore[no-untyped-def]
        self.events.put(event)

    def wait(self, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
        chunks = []
        while True:
            event = self.events.get(timeout=timeout_s)
            chunks.append(event.text)
            if event.finished:
                return chunks, event


def submit(engine, tokenizer, question, params, tenant="t"):  # type: ignore[no-untyped-def]
    collector = Collector()
    request_id = uuid.uuid4().hex
    ids = chat_prompt_ids(tokenizer, [{"role": "user", "content": question}])
    engine.submit(GenerationRequest(request_id, tenant, ids, params, collector))
    return collector, request_id, ids


@torch.inference_mode()
def reference(model, tokenizer, ids, max_tokens):  # type: ignore[no-untyped-def]
    output = model.generate(
        torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        max_new_tokens=max_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    generated = output[0, len(ids) :].tolist()
    return tokenizer.decode(generated, skip_special_tokens=True), generated


def test_concurrent_requests_match_generate_one_by_one(engine, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    params = SamplingParams(max_tokens=40, temperature=0)
    submitted = [submit(engine, tokenizer, q, params) for q in QUESTIONS]
    for collector, _, ids in submitted:
        chunks, final = collector.wait()
        expected_text, expected_tokens = reference(model, tokenizer, ids, 40)
        assert "".join(chunks) == expected_text
        assert final.prompt_tokens == len(ids)
        assert final.completion_tokens == len(expected_tokens)
        assert final.finish_reason == ("stop" if expected_tokens[-1] == tokenizer.eos_token_id else "length")


def test_requests_joining_a_running_batch_match_generate(engine, model_and_tokenizer):
    """Short prompts first, then longer ones join mid-flight (the batch must shift to fit them)."""
    model, tokenizer = model_and_tokenizer
    params = SamplingParams(max_tokens=60, temperature=0)
    first, _, first_ids = submit(engine, tokenizer, "hi", params)
    opening = first.events.get(timeout=60)  # generating now
    later = [submit(engine, tokenizer, q, params) for q in QUESTIONS[2:]]
    for collector, ids, head in [(first, first_ids, opening.text), *((c, i, "") for c, _, i in later)]:
        chunks, _ = collector.wait()
        assert head + "".join(chunks) == reference(model, tokenizer, ids, 60)[0]


def test_streamed_bytes_equal_the_whole_answer(engine, model_and_tokenizer):
    """Byte-level tokens split characters all the time; the stream must still add up exactly."""
    model, tokenizer = model_and_tokenizer
    collector, _, ids = submit(
        engine, tokenizer, "你好世界 🎉🚀", SamplingParams(max_tokens=80, temperature=0)
    )
    chunks, final = collector.wait()
    expected, expected_tokens = reference(model, tokenizer, ids, 80)
    assert "".join(chunks).encode() == expected.encode()
    assert final.completion_tokens == len(expected_tokens)


def test_max_tokens_ends_with_length(engine, model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    collector, _, _ = submit(
        engine,
        tokenizer,
        QUESTIONS[1],
        # ignore_eos: the random model may say its end-of-text token early; here nothing may stop it.
        SamplingParams(max_tokens=5, temperature=0, stop=(), ignore_eos=True),
    )
    _, final = collector.wait()
    assert (final.finish_reason, final.completion_tokens) == ("length", 5)


def test_stop_string_cuts_the_answer_before_it(engine, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    ids = chat_prompt_ids(tokenizer, [{"role": "user", "content": QUESTIONS[2]}])
    full_text, _ = reference(model, tokenizer, ids, 60)
    # Two readable characters well inside the answer (the random model says mostly broken bytes).
    stop = next(
        full_text[i : i + 2] for i in range(5, len(full_text) - 2) if "\ufffd" not in full_text[i : i + 2]
    )
    params = SamplingParams(max_tokens=60, temperature=0, stop=(stop,))
    chunks, final = submit(engine, tokenizer, QUESTIONS[2], params)[0].wait()
    assert "".join(chunks) == full_text[: full_text.find(stop)]
    assert final.finish_reason == "stop"


def test_seeded_sampling_is_reproducible(engine, model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    params = SamplingParams(max_tokens=30, temperature=1.0, top_p=0.9, top_k=50, seed=1234)
    first = "".join(submit(engine, tokenizer, QUESTIONS[1], params)[0].wait()[0])
    again = "".join(submit(engine, tokenizer, QUESTIONS[1], params)[0].wait()[0])
    other = "".join(
        submit(engine, tokenizer, QUESTIONS[1], SamplingParams(max_tokens=30, temperature=1.0, seed=99))[
            0
        ].wait()[0]
    )
    assert first == again
    assert first != other


def test_cancel_frees_the_slot(engine, model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    collector, request_id, _ = submit(
        engine, tokenizer, QUESTIONS[2], SamplingParams(max_tokens=400, temperature=0, stop=())
    )
    collector.events.get(timeout=60)
    engine.cancel(request_id)
    _, final = collector.wait()
    assert final.finish_reason == "cancelled"
    assert engine.load()["running"] == 0


def test_context_length_and_queue_bounds(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    idle = Engine(model, tokenizer, EngineConfig(max_running=1, max_queued=2, max_seq_len=100))  # not started
    ids = chat_prompt_ids(tokenizer, [{"role": "user", "content": "hello"}])
    with pytest.raises(ContextLengthExceeded) as exceeded:
        idle.submit(GenerationRequest("long", "t", ids, SamplingParams(max_tokens=100), lambda e: None))
    assert exceeded.value.context_length == 100 and exceeded.value.prompt_tokens == len(ids)
    assert "100" in str(exceeded.value)
    for n in range(2):
        idle.submit(GenerationRequest(f"r{n}", "t", ids, SamplingParams(max_tokens=10), lambda e: None))
    with pytest.raises(QueueFull):
        idle.submit(GenerationRequest("r3", "t", ids, SamplingParams(max_tokens=10), lambda e: None))


def test_the_prompt_and_max_tokens_may_fill_the_context_exactly(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    idle = Engine(model, tokenizer, EngineConfig(max_seq_len=100))  # not started: submit only checks
    ids = chat_prompt_ids(tokenizer, [{"role": "user", "content": "hello"}])
    room = 100 - len(ids)
    idle.submit(GenerationRequest("fits", "t", ids, SamplingParams(max_tokens=room), lambda e: None))
    with pytest.raises(ContextLengthExceeded) as exceeded:
        idle.submit(GenerationRequest("over", "t", ids, SamplingParams(max_tokens=room + 1), lambda e: None))
    assert (exceeded.value.prompt_tokens, exceeded.value.max_tokens) == (len(ids), room + 1)
    with pytest.raises(InvalidParameter) as empty:
        idle.submit(GenerationRequest("empty", "t", [], SamplingParams(max_tokens=1), lambda e: None))
    assert (empty.value.param, empty.value.message) == ("messages", "the prompt is empty")
    assert idle.load() == {"running": 0, "waiting": 1, "capacity": 32}


def answer_burst_as_generate_does(engine, model, tokenizer, prompts, max_tokens):  # type: ignore[no-untyped-def]
    """Queues every prompt before the engine starts (one burst), then checks each answer against
    generate()'s and shuts the engine down."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0)
    collectors = []
    for ids in prompts:
        collector = Collector()
        engine.submit(GenerationRequest(uuid.uuid4().hex, "t", ids, params, collector))
        collectors.append(collector)
    engine.start()
    try:
        for collector, ids in zip(collectors, prompts, strict=True):
            chunks, _ = collector.wait()
            assert "".join(chunks) == reference(model, tokenizer, ids, max_tokens)[0]
    finally:
        engine.shutdown()


def test_a_prompt_a_step_always_holds_is_prefilled_whole(model_and_tokenizer, monkeypatch):
    """A burst larger than the first step's budget: the prompt that does not fit what is left of it
    waits for the next step and goes whole (one forward), rather than a few tokens now and the rest
    then; the answers still equal generate()'s."""
    model, tokenizer = model_and_tokenizer
    questions = [f"Question number {n}: what is {n} plus {n}?" for n in range(6)]
    prompts = [chat_prompt_ids(tokenizer, [{"role": "user", "content": q}]) for q in questions]
    longest = max(len(ids) for ids in prompts)
    # The first step's budget (4 chunks, nothing running) holds four prompts and part of a fifth.
    chunk = (4 * longest + longest // 2) // 4 + 1
    assert 4 * chunk < 5 * min(len(ids) for ids in prompts)
    engine = Engine(model, tokenizer, EngineConfig(max_running=8, prefill_chunk_tokens=chunk))
    forwards: list[tuple[int, int]] = []  # (start, prompts) of each prefill forward
    original = engine._prefill_forward

    def counted(batch, past):  # type: ignore[no-untyped-def]
        forwards.append((batch.start, len(batch.lengths)))
        return original(batch, past)

    monkeypatch.setattr(engine, "_prefill_forward", counted)
    answer_burst_as_generate_does(engine, model, tokenizer, prompts, 8)
    assert all(start == 0 for start, _ in forwards)  # no prompt continued from a chunk of itself
    assert sum(count for _, count in forwards) == len(prompts)
    assert forwards[0] == (0, 4)


def test_a_burst_prefilled_over_several_steps(model_and_tokenizer, monkeypatch):
    """A burst larger than a step's prefill budget: the first group's batch decodes only after the next
    group is prefilled (so the later prompts' first tokens do not wait for a decode step), and the later
    groups join without the cache being copied into larger buffers under the running batch; the answers
    still equal generate()'s."""
    model, tokenizer = model_and_tokenizer
    questions = [f"Question number {n}: what is {n} plus {n}?" for n in range(12)]
    prompts = [chat_prompt_ids(tokenizer, [{"role": "user", "content": q}]) for q in questions]
    # The first step's budget (4 chunks, nothing running) holds four of them: the twelve join over
    # several steps.
    chunk = max(len(ids) for ids in prompts)
    engine = Engine(model, tokenizer, EngineConfig(max_running=16, prefill_chunk_tokens=chunk))
    steps: list[int] = []  # prompts in each prefill forward, 0 for a decode step
    prefill_forward, decode_step = engine._prefill_forward, engine._decode_step

    def counted_prefill(batch, past):  # type: ignore[no-untyped-def]
        steps.append(len(batch.lengths))
        return prefill_forward(batch, past)

    def counted_decode() -> None:
        steps.append(0)
        decode_step()

    buffers: list[int] = []  # where the first layer's keys are, as each group joins
    add_rows = engine._cache.add_rows

    def counted_add_rows(states, tokens):  # type: ignore[no-untyped-def]
        first = add_rows(states, tokens)
        buffers.append(engine._cache.buffers()[0][0].data_ptr())
        return first

    monkeypatch.setattr(engine, "_prefill_forward", counted_prefill)
    monkeypatch.setattr(engine, "_decode_step", counted_decode)
    monkeypatch.setattr(engine._cache, "add_rows", counted_add_rows)
    answer_burst_as_generate_does(engine, model, tokenizer, prompts, 4)
    forwards = [count for count in steps if count]
    assert len(forwards) > 2 and forwards[0] == 4 and sum(forwards) == len(prompts)
    assert steps[:2] == forwards[:2]  # the second group's prefill before the first decode step
    assert len(set(buffers)) == 1  # never copied into new buffers


def test_shutdown_finishes_every_waiting_request(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    running = Engine(model, tokenizer, EngineConfig(max_running=1)).start()
    finals: list = []
    done = threading.Event()

    def sink(event) -> None:  # type: ignore[no-untyped-def]
        if event.finished:
            finals.append(event)
            if len(finals) == 3:
                done.set()

    ids = chat_prompt_ids(tokenizer, [{"role": "user", "content": "hello"}])
    # ignore_eos: no request can end on its own before 400 tokens, many more steps than the engine takes
    # between the submits and the shutdown, so "cancelled" is the only right answer for each.
    params = SamplingParams(max_tokens=400, stop=(), ignore_eos=True)
    for n in range(3):
        running.submit(GenerationRequest(f"r{n}", "t", ids, params, sink))
    running.shutdown()
    assert done.wait(10)
    assert sorted((event.request_id, event.finish_reason) for event in finals) == [
        ("r0", "cancelled"),
        ("r1", "cancelled"),
        ("r2", "cancelled"),
    ]
    assert all(event.completion_tokens < 400 and event.text == "" for event in finals)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 2.5),
        ("top_p", 0.0),
        ("top_k", -1),
        ("max_tokens", 0),
        ("presence_penalty", 3.0),
        ("frequency_penalty", -2.5),
        ("repetition_penalty", 0.0),
        ("stop", ("",)),
        ("stop", ("a", "b", "c", "d", "e")),
    ],
)
def test_parameters_the_engine_cannot_honour_are_refused(field, value):
    with pytest.raises(InvalidParameter) as refused:
        SamplingParams(**{field: value})
    assert refused.value.param == field


def test_native_gqa_attention_matches_transformers_sdpa(tiny_model_dir):
    """Same logits as transformers' own SDPA path on a left-padded batch (the case it repeats KV for)."""
    from transformers import AutoModelForCausalLM

    from models_registry.engine.attention import IMPLEMENTATION

    ours, _ = load_chat_model(tiny_model_dir)
    assert ours.config._attn_implementation == IMPLEMENTATION
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    input_ids = torch.randint(0, 200, (3, 12))
    attention_mask = torch.ones(3, 12, dtype=torch.long)
    attention_mask[0, :5] = 0
    attention_mask[1, :2] = 0
    with torch.inference_mode():
        expected = reference(input_ids=input_ids, attention_mask=attention_mask).logits
        got = ours(input_ids=input_ids, attention_mask=attention_mask).logits
    real = attention_mask.bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)
