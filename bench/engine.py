"""Engine benchmark: our continuous batching against one `generate()` per request, serialized.

    python -m bench.engine [--streams 1,8,32] [--max-tokens 128] [--device cpu]
                           [--precision float32|bfloat16|auto] [--no-prepack] [--no-fused]
                           [--no-compile] [--compile-cache DIR] [--json]

Reports output tokens/s, time to first token (TTFT) p50/p95 and inter-token latency (ITL) p50/p95 for
N concurrent streaming requests, then a fairness run: tenant A keeps twice the running-slot cap
outstanding while tenant B sends one request at a time; B's TTFT p95 under that flood and alone; then
the prefix-reuse run: 32 requests of one tenant sharing a ~400-token system prompt, on a fresh engine
without and with the prefix cache (TTFT p50, prompt tokens prefilled). The throughput and fairness runs
keep the prefix cache off, so their figures measure batching and scheduling alone.
With --json the last line is one JSON object (a contract: keep its keys; added since: dtype, prepack,
compile ("on" when the decode step ran compiled, models_registry/engine/compiled.py; --no-compile turns
it off) and compile_s (seconds the first engine took to compile it before any run, or to load it where
--compile-cache holds it from an earlier run), threads,
prefix_reuse, fused_decode: whether the engine's decode steps ran through
models_registry/engine/fused.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.generation.streamers import BaseStreamer

from models_registry.engine.attention import use_native_gqa
from models_registry.engine.engine import Engine, EngineConfig, GenerationRequest
from models_registry.engine.loader import chat_prompt_ids, load_chat_model, warm_up, weights_dtype
from models_registry.engine.packed import pack_linear_layers
from models_registry.engine.params import SamplingParams

TOPICS = [
    "a lighthouse keeper who finds a message in a bottle",
    "the history of the printing press",
    "how photosynthesis works, step by step",
    "a robot learning to paint",
    "a day in the life of a medieval blacksmith",
    "why the sky is blue",
    "a journey across the Sahara on a camel",
    "the rules of chess for a beginner",
]


def prompts(tokenizer, count: int) -> list[list[int]]:  # type: ignore[no-untyped-def]
    return [
        chat_prompt_ids(
            tokenizer,
            [
                {
                    "role": "user",
                    "content": f"Write a long, detailed text about {TOPICS[i % len(TOPICS)]}. ({i})",
                }
            ],
        )
        for i in range(count)
    ]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Trace:
    submitted: float
    token_times: list[float] = field(default_factory=list)
    tokens: int = 0
    done: threading.Event = field(default_factory=threading.Event)


def run_ours(
    engine: Engine, prompt_ids: list[list[int]], max_tokens: int, tenant: str = "bench"
) -> list[Trace]:
    traces = []
    for ids in prompt_ids:
        trace = Trace(submitted=time.perf_counter())

        def sink(event, trace=trace):  # type: ignore[no-untyped-def]
            now = time.perf_counter()
            if event.text:
                trace.token_times.append(now)
            if event.finished:
                trace.tokens = event.completion_tokens
                trace.done.set()

        params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
        engine.submit(GenerationRequest(uuid.uuid4().hex, tenant, ids, params, sink))
        traces.append(trace)
    for trace in traces:
        trace.done.wait()
    return traces


class _TimingStreamer(BaseStreamer):
    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.prompt_seen = False

    def put(self, value) -> None:  # type: ignore[no-untyped-def]
        if not self.prompt_seen:  # generate() first hands the streamer the prompt
            self.prompt_seen = True
            return
        self.trace.token_times.append(time.perf_counter())

    def end(self) -> None:
        pass


@torch.inference_mode()
def run_naive(model, tokenizer, prompt_ids: list[list[int]], max_tokens: int) -> list[Trace]:  # type: ignore[no-untyped-def]
    """All requests arrive at once and are served one `generate()` at a time."""
    device = next(model.parameters()).device
    start = time.perf_counter()
    traces = []
    for ids in prompt_ids:
        trace = Trace(submitted=start)
        output = model.generate(
            torch.tensor([ids], device=device),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,  # as ignore_eos does for ours: every request yields max_tokens
            do_sample=False,
            streamer=_TimingStreamer(trace),
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
        trace.tokens = output.shape[1] - len(ids)
        traces.append(trace)
    return traces


def summarize(engine_name: str, streams: int, traces: list[Trace]) -> dict:
    first = min(t.submitted for t in traces)
    last = max(t.token_times[-1] for t in traces if t.token_times)
    ttfts = [t.token_times[0] - t.submitted for t in traces if t.token_times]
    itls = [b - a for t in traces for a, b in zip(t.token_times, t.token_times[1:], strict=False)]
    return {
        "engine": engine_name,
        "streams": streams,
        "requests": len(traces),
        "output_tok_s": round(sum(t.tokens for t in traces) / (last - first), 2),
        "ttft_p50_s": round(percentile(ttfts, 50), 4),
        "ttft_p95_s": round(percentile(ttfts, 95), 4),
        "itl_p50_s": round(percentile(itls, 50), 4),
        "itl_p95_s": round(percentile(itls, 95), 4),
    }


def fairness(
    engine: Engine, tokenizer, max_tokens: int, b_requests: int = 10, b_max_tokens: int = 16
) -> dict:  # type: ignore[no-untyped-def]
    """B's TTFT alone, then while A keeps 2x the slot cap outstanding.

    B's requests are short (only their first token is measured); A's are max_tokens long.
    """
    b_prompt = prompts(tokenizer, 1)[0]

    def b_ttfts() -> list[Trace]:
        return [run_ours(engine, [b_prompt], b_max_tokens, tenant="b")[0] for _ in range(b_requests)]

    alone = [t.token_times[0] - t.submitted for t in b_ttfts()]

    flood_target = 2 * engine.config.max_running
    outstanding = threading.Semaphore(0)
    stop = threading.Event()
    a_prompts = prompts(tokenizer, flood_target)

    def flood() -> None:
        in_flight = 0
        index = 0
        while not stop.is_set():
            while in_flight < flood_target:
                engine.submit(
                    GenerationRequest(
                        uuid.uuid4().hex,
                        "a",
                        a_prompts[index % len(a_prompts)],
                        SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True),
                        lambda event: outstanding.release() if event.finished else None,
                    )
                )
                in_flight += 1
                index += 1
            if outstanding.acquire(timeout=0.1):
                in_flight -= 1

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    time.sleep(2.0)  # let A fill every slot and build a backlog
    flooded = [t.token_times[0] - t.submitted for t in b_ttfts()]
    stop.set()
    flooder.join()
    while engine.load()["running"] or engine.load()["waiting"]:
        time.sleep(0.1)
    return {
        "b_ttft_p95_alone_s": round(percentile(alone, 95), 4),
        "b_ttft_p95_flooded_s": round(percentile(flooded, 95), 4),
    }


SYSTEM_POLICY = (
    "You are the internal assistant of Example Corp. Follow the handbook: answer in plain English, "
    "cite the policy section you rely on, never reveal personal data, escalate security questions to "
    "the on-call engineer, and keep answers under two hundred words. "
)


def prefix_reuse(model, tokenizer, args, requests: int = 32, max_tokens: int = 8) -> dict:  # type: ignore[no-untyped-def]
    """One tenant's `requests` at once, sharing a ~400-token system prompt: without and with reuse."""
    system = SYSTEM_POLICY * 8
    batch = [
        chat_prompt_ids(
            tokenizer,
            [
                {"role": "system", "content": system},
                {"role": "user", "content": f"Tell me about {TOPICS[i % len(TOPICS)]}. ({i})"},
            ],
        )
        for i in range(requests)
    ]
    shared = len(chat_prompt_ids(tokenizer, [{"role": "system", "content": system}]))
    report: dict = {"requests": requests, "shared_prompt_tokens": shared}
    for label, cache_bytes in (("without", 0), ("with", 256 * 2**20)):
        engine = started_engine(model, tokenizer, args, cache_bytes)
        run_ours(engine, prompts(tokenizer, 2), 2)  # warm the engine's own paths (no shared prefix)
        traces = run_ours(engine, batch, max_tokens)
        stats = engine.stats()
        engine.shutdown()
        ttfts = [t.token_times[0] - t.submitted for t in traces if t.token_times]
        report[label] = {
            "ttft_p50_s": round(percentile(ttfts, 50), 4),
            "ttft_p95_s": round(percentile(ttfts, 95), 4),
            "prefill_tokens": stats.prefill_tokens,
            "reused_tokens": stats.reused_tokens,
        }
    return report


def started_engine(model, tokenizer, args, cache_bytes: int = 0) -> Engine:  # type: ignore[no-untyped-def]
    """An engine as the command line says, its decode step compiled before it is measured."""
    config = EngineConfig(
        max_running=args.max_running,
        prefix_cache_bytes=cache_bytes,
        fused_decode=not args.no_fused,
        compile_decode=not args.no_compile,
        compile_cache_dir=args.compile_cache,
    )
    engine = Engine(model, tokenizer, config).start()
    engine.wait_compiled()
    return engine


def in_passing_thread(function, *args):  # type: ignore[no-untyped-def]
    """`function(*args)` on a thread that ends with it (and its OpenMP helper threads with it)."""
    box: dict = {}

    def body() -> None:
        try:
            box["result"] = function(*args)
        except BaseException as error:  # re-raised on the caller's thread
            box["error"] = error

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def random_llama(
    hidden: int = 2048, layers: int = 16, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> LlamaForCausalLM:
    """A Llama of about 1B parameters with random weights: throughput depends on shapes, not weights."""
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    target = torch.device(device)
    model = LlamaForCausalLM(config).to(dtype=dtype, device=target).eval()
    use_native_gqa(model)
    return model


def describe_machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,8,32")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="a local model; default: bundled SmolLM2"
    )
    parser.add_argument(
        "--random-1b", action="store_true", help="random-weight ~1B Llama (with the bundled tokenizer)"
    )
    parser.add_argument("--precision", choices=["float32", "bfloat16", "auto"], default="float32")
    parser.add_argument("--no-prepack", action="store_true", help="plain nn.Linear (no oneDNN packing)")
    parser.add_argument("--no-fused", action="store_true", help="decode through transformers' forward")
    parser.add_argument("--no-compile", action="store_true", help="the fused decode step uncompiled")
    parser.add_argument(
        "--no-plain-weights", action="store_true", help="the compiled one-row step over packed weights"
    )
    parser.add_argument(
        "--compile-cache",
        type=Path,
        default=None,
        help="keep and reuse compiled steps here (default: compile)",
    )
    parser.add_argument("--skip-prefix-reuse", action="store_true")
    parser.add_argument("--max-running", type=int, default=32)
    parser.add_argument("--naive-limit", type=int, default=8, help="naive runs on min(N, this); 0: none")
    parser.add_argument("--skip-fairness", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    if args.model_dir is None:
        from models_registry.bundled import resolve_bundled

        args.model_dir = resolve_bundled("bundled:smollm2-135m", Path("var/models"))
    prepack = not args.no_prepack
    keep_plain = prepack and not (args.no_compile or args.no_fused or args.no_plain_weights)  # as the worker
    dtype = weights_dtype(torch.device(args.device), args.precision)

    def load():  # type: ignore[no-untyped-def]
        model, tokenizer = load_chat_model(args.model_dir, args.device, args.precision, prepack, keep_plain)
        if args.random_1b:
            model = random_llama(device=args.device, dtype=dtype)
            if prepack:
                pack_linear_layers(model, keep_plain=keep_plain)
        warm_up(model, tokenizer)
        return model, tokenizer

    # Like the worker (models_registry/worker/model_thread.py), only one thread at a time runs model
    # work: loading and each naive run happen on threads that end, and each engine is shut down before
    # the next run. Two live OpenMP pools on these 2 cores made every run slower.
    model, tokenizer = in_passing_thread(load)
    model_name = "random-llama-1b" if args.random_1b else args.model_dir.name

    def engine_for() -> Engine:
        nonlocal compiled, compile_s
        started = time.perf_counter()
        engine = started_engine(model, tokenizer, args)
        if compile_s is None:  # the first engine compiles; later ones reuse its step
            compile_s = round(time.perf_counter() - started, 1)
        compiled = engine.compiled_decode
        return engine

    results = []
    fused_decode = False  # whether the engine's decode steps ran through fused.py (it says)
    compiled, compile_s = "off", None  # ...and compiled (compiled.py), after how long compiling
    for streams in [int(n) for n in args.streams.split(",")]:
        batch = prompts(tokenizer, streams)
        engine = engine_for()
        fused_decode = engine.fused_decode
        run_ours(engine, prompts(tokenizer, 2), 8)  # warm the engine's own paths
        ours = summarize("ours", streams, run_ours(engine, batch, args.max_tokens))
        engine.shutdown()
        results.append(ours)
        if not args.json:
            print(json.dumps(ours), flush=True)
        naive_batch = batch[: min(streams, args.naive_limit)]
        if naive_batch:  # --naive-limit 0 measures ours alone
            naive_traces = in_passing_thread(run_naive, model, tokenizer, naive_batch, args.max_tokens)
            results.append(summarize("naive", streams, naive_traces))
            if not args.json:
                print(json.dumps(results[-1]), flush=True)
    fair = {}
    if not args.skip_fairness:
        engine = engine_for()
        fair = fairness(engine, tokenizer, args.max_tokens)
        engine.shutdown()
    reuse = {} if args.skip_prefix_reuse else prefix_reuse(model, tokenizer, args)
    report = {
        "model": model_name,
        "device": f"{args.device} ({describe_machine(args.device)}, {dtype})",
        "dtype": str(dtype).removeprefix("torch."),
        "prepack": prepack and args.device == "cpu",
        "compile": "on" if compiled == "on" else "off",
        "compile_s": compile_s if compiled == "on" else None,
        "fused_decode": fused_decode,
        "plain_weights": keep_plain and compiled == "on",
        "threads": torch.get_num_threads(),
        "results": results,
        "fairness": fair,
        "prefix_reuse": reuse,
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
