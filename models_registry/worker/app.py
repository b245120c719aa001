"""The model worker: a uvicorn app that owns one model and serves it over the internal API.

A chat model gets the continuous-batching engine (`/internal/generate`, a token stream); an embedding
model gets the embedder (`/internal/embed`), its callers' inputs batched together (embed_batcher.py).
The worker loads the model (bf16 on GPU, float32 on CPU), warms up, then registers itself and
heartbeats. Every route needs the shared worker secret.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llm_platform.core.errors import error_body
from llm_platform.core.logging_setup import configure_logging
from llm_platform.core.middleware import RequestIdMiddleware
from llm_platform.core.settings import Settings
from models_registry.engine.embedder import Embedder
from models_registry.engine.engine import (
    Engine,
    EngineClosed,
    EngineConfig,
    GenerationEvent,
    GenerationRequest,
)
from models_registry.engine.loader import chat_prompt_ids, load_chat_model, warm_up
from models_registry.engine.packed import is_packed
from models_registry.engine.params import ContextLengthExceeded, InvalidParameter, SamplingParams
from models_registry.engine.scheduler import QueueFull
from models_registry.engine.stats import EngineStats
from models_registry.worker.embed_batcher import EmbedBatcher
from models_registry.worker.heartbeat import HeartbeatSender
from models_registry.worker.metrics import worker_registry
from models_registry.worker.model_thread import ModelThread
from models_registry.worker.protocol import (
    EMBED_PATH,
    GENERATE_PATH,
    HEALTH_PATH,
    METRICS_PATH,
    ChatMessage,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    WorkerEvent,
    other_dimensions,
)
from models_registry.worker.references import fit_references, with_references

logger = logging.getLogger(__name__)


@dataclass
class WorkerState:
    """What the worker holds for its lifetime: an engine (chat) or an embedder (embedding)."""

    worker_id: str
    model_name: str
    secret: str
    started_at: float
    engine: Engine | None = None
    embedder: Embedder | None = None
    batcher: EmbedBatcher | None = None
    model_thread: ModelThread = field(default_factory=ModelThread)
    arithmetic: str = ""  # how the model computes, for the log: "bfloat16, oneDNN-packed", ...
    embed_capacity: int = 1  # requests one forward takes at most (one input each)
    requests: int = 0
    load_s: float = 0.0  # how long loading the model took
    warmup_s: float = 0.0
    ready: bool = False  # loaded and warmed up: the registry hears so, and work comes

    def load(self) -> dict[str, int]:
        if self.engine is not None:
            return self.engine.load()
        in_flight = self.batcher.in_flight if self.batcher is not None else 0
        return {
            "running": min(in_flight, self.embed_capacity),
            "waiting": max(0, in_flight - self.embed_capacity),
            "capacity": self.embed_capacity,
        }

    def engine_stats(self) -> EngineStats | None:
        return self.engine.stats() if self.engine is not None else None

    def embed_forwards(self) -> int | None:
        return self.batcher.forwards if self.batcher is not None else None


async def authorize(request: Request) -> WorkerState:
    """Every worker route needs the shared secret: the worker API is internal."""
    worker: WorkerState = request.app.state.worker
    supplied = request.headers.get("authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(supplied.encode(), worker.secret.encode()):
        raise _Rejected(401, "invalid_credentials", "bad worker secret")
    return worker


WorkerDep = Annotated[WorkerState, Depends(authorize)]


def create_worker_app(
    settings: Settings, model_name: str, model_dir: str, device: str, url: str, kind: str = "chat"
) -> FastAPI:
    configure_logging(settings.log_level, settings.log_format)
    state = WorkerState(
        f"{model_name}-{uuid.uuid4().hex[:8]}", model_name, settings.resolved_worker_secret, time.time()
    )
    registry, observe_step = worker_registry(state, settings.metrics_tenant_label)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Registered while it loads (as starting: sent no work), so the pool shows it coming up.
        heartbeat = HeartbeatSender(settings, state.worker_id, url, (model_name,), state.load)
        await heartbeat.start()
        try:
            await load_model()
            app.state.worker = state
            state.ready = True
            await heartbeat.ready()
            logger.info(
                "worker %s serving %s (%s) on %s (%s, %s)",
                state.worker_id,
                model_name,
                kind,
                url,
                device,
                state.arithmetic,
            )
            yield
        finally:
            await heartbeat.stop()
            if state.batcher is not None:
                await state.batcher.stop()
            if state.engine is not None:
                await asyncio.to_thread(state.engine.shutdown)
            await asyncio.to_thread(state.model_thread.close)

    async def load_model() -> None:
        started = time.perf_counter()
        # All model work on one thread (model_thread.py: why); a chat model's ends before the engine's.
        run = state.model_thread.run
        if kind == "embedding":
            state.embedder = embedder = await run(
                Embedder.load, model_dir, device, settings.embed_precision, settings.engine_prepack
            )
            loaded = time.perf_counter()
            dtype = str(embedder.model.dtype).removeprefix("torch.")
            state.arithmetic = ("bfloat16 autocast" if embedder.autocast else dtype) + (
                ", oneDNN-packed" if embedder.packed else ""
            )
            await run(embedder.embed, ["warm up"])
            state.embed_capacity = settings.embed_batch_max_inputs
            state.batcher = EmbedBatcher(
                embedder.forward, settings.embed_batch_max_inputs, settings.embed_batch_max_tokens, run
            ).start()
        else:
            # Plain weights serve the compiled one-row step only (packed.py: PackedLinear.row).
            keep_plain = (
                settings.engine_plain_weights
                and settings.engine_compile_decode
                and settings.engine_fused_decode
            )
            model, tokenizer = await run(
                load_chat_model,
                model_dir,
                device,
                settings.engine_precision,
                settings.engine_prepack,
                keep_plain,
            )
            loaded = time.perf_counter()
            packed = ", oneDNN-packed" if is_packed(model) else ""
            state.arithmetic = str(model.dtype).removeprefix("torch.") + packed
            await run(warm_up, model, tokenizer)
            await asyncio.to_thread(state.model_thread.close)
            state.engine = Engine(model, tokenizer, _engine_config(settings), observe_step).start()
            state.arithmetic += ", fused decode" if state.engine.fused_decode else ""
        state.load_s, state.warmup_s = loaded - started, time.perf_counter() - loaded

    app = FastAPI(
        title=f"llm-platform worker: {model_name}", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.add_middleware(RequestIdMiddleware)  # the API's X-Request-ID tags the worker's log lines too

    @app.exception_handler(_Rejected)
    async def _rejected(_: Request, exc: _Rejected) -> JSONResponse:
        return JSONResponse(error_body(exc.message, "invalid_request_error", exc.code, exc.param), exc.status)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("worker error")
        return JSONResponse(error_body("worker error", "server_error", "internal_error"), 500)

    @app.post(GENERATE_PATH)
    async def generate(body: GenerateRequest, worker: WorkerDep) -> StreamingResponse:
        engine = worker.engine
        if engine is None:
            raise _Rejected(400, "invalid_request", f"{worker.model_name} is not a chat model", "model")
        messages, references_used = _grounded(engine, body)
        prompt_ids = chat_prompt_ids(engine.tokenizer, [m.model_dump() for m in messages])
        max_tokens = body.params.max_tokens_within(engine.max_seq_len - len(prompt_ids))
        try:
            params = SamplingParams(
                **body.params.model_dump(exclude={"max_tokens", "max_tokens_is_default", "stop"}),
                stop=tuple(body.params.stop),
                max_tokens=max_tokens,
            )
        except InvalidParameter as exc:
            raise _Rejected(400, "invalid_request", exc.message, exc.param) from exc
        events: asyncio.Queue[GenerationEvent] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def sink(event: GenerationEvent) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        try:
            engine.submit(GenerationRequest(body.request_id, body.tenant, prompt_ids, params, sink))
        except ContextLengthExceeded as exc:
            raise _Rejected(400, "context_length_exceeded", str(exc), "messages") from exc
        except InvalidParameter as exc:
            raise _Rejected(400, "invalid_request", exc.message, exc.param) from exc
        except (QueueFull, EngineClosed) as exc:
            raise _Rejected(503, "worker_busy", "the worker's queue is full") from exc
        worker.requests += 1
        return StreamingResponse(
            _stream(engine, body.request_id, events, references_used),
            media_type="application/x-ndjson",
        )

    @app.post(EMBED_PATH)
    async def embed(body: EmbedRequest, worker: WorkerDep) -> EmbedResponse:
        embedder, batcher = worker.embedder, worker.batcher
        if embedder is None or batcher is None:
            raise _Rejected(400, "invalid_request", f"{worker.model_name} is not an embedding model", "model")
        if refusal := other_dimensions(body.dimensions, embedder.dimensions):
            raise _Rejected(400, "invalid_request", refusal, "dimensions")
        try:  # tokenizing is quick (a fast tokenizer), and refuses what no forward should see
            prepared = embedder.prepare(body.inputs)
        except ContextLengthExceeded as exc:
            message = (
                f"An input has {exc.prompt_tokens} tokens; this model reads at most {exc.context_length}"
            )
            raise _Rejected(400, "context_length_exceeded", message, "input") from exc
        except InvalidParameter as exc:
            raise _Rejected(400, "invalid_request", exc.message, exc.param) from exc
        vectors = await batcher.embed(prepared, body.normalize)
        worker.requests += 1
        return EmbedResponse(
            embeddings=vectors,
            prompt_tokens=sum(len(ids) for ids in prepared),
            dimensions=embedder.dimensions,
        )

    @app.get(HEALTH_PATH)
    async def health(worker: WorkerDep) -> dict[str, object]:
        return {
            "status": "ok",
            "worker_id": worker.worker_id,
            "model": worker.model_name,
            "kind": kind,
            **worker.load(),
        }

    @app.get(METRICS_PATH, include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus's text format; no secret, like the API's /metrics (it shows load, not data)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _grounded(engine: Engine, body: GenerateRequest) -> tuple[list[ChatMessage], int]:
    """The request's messages with as many of its references as fit (best first), counted with the
    model's own tokenizer, leaving the completion's budget free; and how many that is."""
    if not body.references:
        return body.messages, 0

    def prompt_tokens(messages: list[ChatMessage]) -> int:
        return len(chat_prompt_ids(engine.tokenizer, [m.model_dump() for m in messages]))

    room = engine.max_seq_len - (body.params.max_tokens or 1)
    used = fit_references(body.messages, body.references, prompt_tokens, room)
    return with_references(body.messages, body.references[:used]), used


async def _stream(
    engine: Engine,
    request_id: str,
    events: asyncio.Queue[GenerationEvent],
    references_used: int = 0,
) -> AsyncIterator[bytes]:
    """NDJSON lines until the final event; a client that goes away cancels the sequence."""
    finished = False
    try:
        while not finished:
            event = await events.get()
            finished = event.finished
            line = WorkerEvent.model_validate(asdict(event))  # the engine's event, minus its request id
            if finished:
                line.references_used = references_used
            yield line.model_dump_json(exclude_defaults=not finished).encode() + b"\n"
    finally:
        if not finished:  # disconnected: free the slot at the next step
            engine.cancel(request_id)


class _Rejected(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def _engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        max_running=settings.engine_max_running,
        fair_headroom=settings.engine_fair_headroom,
        max_queued=settings.engine_max_queued,
        max_seq_len=settings.engine_max_seq_len,
        max_batch_tokens=settings.engine_max_batch_tokens,
        prefill_chunk_tokens=settings.engine_prefill_chunk_tokens,
        prefix_cache_bytes=settings.engine_prefix_cache_mb * 2**20,
        fused_decode=settings.engine_fused_decode,
        compile_decode=settings.engine_compile_decode,
        compile_cache_dir=settings.resolved_compile_cache_dir,
    )
