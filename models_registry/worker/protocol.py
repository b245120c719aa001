"""What the API process and the model workers agree on: the workers' HTTP API (JSON in, NDJSON events out)
and a worker's entry in the worker registry, which the worker writes (to Redis, or to the API's embedded
registry at REGISTER_PATH) and the API reads (models_registry.registry)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from models_registry.engine.params import RANGES, SamplingParams

GENERATE_PATH = "/internal/generate"
EMBED_PATH = "/internal/embed"
HEALTH_PATH = "/internal/health"
METRICS_PATH = "/metrics"  # Prometheus's text format, unauthenticated like the API's
REGISTER_PATH = "/internal/workers"
# With Redis, each worker's entry is a key with a TTL (a dead worker drops out by itself), listed in an
# index set so that readers find them without a SCAN.
WORKER_KEY_PREFIX = "llmp:workers:"
WORKER_INDEX_KEY = "llmp:worker-index"


def _within(name: str, kind: type) -> Any:
    """`kind` held to the engine's range for `name`: the one description of it (engine/params.py)."""
    bounds = RANGES[name]
    return Annotated[kind, Field(ge=bounds.ge, gt=bounds.gt, le=bounds.le, lt=bounds.lt)]


# Field types of the wire schemas that take sampling parameters (a value out of range: 422 there).
MaxTokens = _within("max_tokens", int)
Temperature = _within("temperature", float)
TopP = _within("top_p", float)
TopK = _within("top_k", int)
PresencePenalty = _within("presence_penalty", float)
FrequencyPenalty = _within("frequency_penalty", float)
RepetitionPenalty = _within("repetition_penalty", float)
# What a request leaves out (max_tokens aside: see GenerateParams).
SAMPLING_DEFAULTS = SamplingParams()


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class GenerateParams(BaseModel):
    # Decided once by the API's chat turn (llm_platform/chat/generation.py), so the worker generates the
    # budget the API reserved tokens for. None: as many as fit, for callers that reach a worker directly
    # (benchmarks, tests): they have no platform default to apply, and the API always sends one.
    max_tokens: int | None = None
    # True: max_tokens is the platform's default, not asked for; the worker shortens it to the room the
    # prompt leaves (only the worker counts the prompt's tokens), where an asked one is refused if too long.
    max_tokens_is_default: bool = False
    # Unchecked here: the worker refuses, with a 400 naming it, what the engine cannot honour.
    temperature: float = SAMPLING_DEFAULTS.temperature
    top_p: float = SAMPLING_DEFAULTS.top_p
    top_k: int = SAMPLING_DEFAULTS.top_k
    seed: int | None = SAMPLING_DEFAULTS.seed
    stop: list[str] = Field(default_factory=list)
    presence_penalty: float = SAMPLING_DEFAULTS.presence_penalty
    frequency_penalty: float = SAMPLING_DEFAULTS.frequency_penalty
    repetition_penalty: float = SAMPLING_DEFAULTS.repetition_penalty
    ignore_eos: bool = SAMPLING_DEFAULTS.ignore_eos

    def asked_max_tokens(self) -> int | None:
        """max_tokens as the request (or the model's defaults) asked for it: None when the platform's
        default applies. What the response cache keys on, so a changed default keeps existing keys."""
        return None if self.max_tokens_is_default else self.max_tokens

    def max_tokens_within(self, room: int) -> int:
        """The completion's budget, once the worker knows the prompt leaves `room` tokens of context: an
        asked max_tokens as it is (the engine refuses one that does not fit), the default shortened to fit.
        At least 1, so a prompt that fills the context is refused by the engine, not sent back empty."""
        if self.max_tokens is None:
            return max(1, room)
        if self.max_tokens_is_default:
            return max(1, min(self.max_tokens, room))
        return self.max_tokens


class Reference(BaseModel):
    """A passage a knowledge base found for the question: the worker puts as many as fit into the
    prompt (models_registry/worker/references.py), best first."""

    title: str
    text: str


class GenerateRequest(BaseModel):
    request_id: str = Field(min_length=1, max_length=128)
    tenant: str = Field(min_length=1, max_length=63)
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    params: GenerateParams = GenerateParams()
    references: list[Reference] = Field(default_factory=list, max_length=64)


class WorkerEvent(BaseModel):
    """One line of the stream: new text, and on the last line the finish reason and exact usage."""

    text: str = ""
    finished: bool = False
    finish_reason: Literal["stop", "length", "cancelled", "error"] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    references_used: int = 0  # the last line: how many of the request's references the prompt held


MAX_EMBED_INPUTS = 2048  # inputs per embeddings request (OpenAI's cap too)


class EmbedRequest(BaseModel):
    """Texts, or token ids of the model's own vocabulary without special tokens (the worker adds them,
    as it does to a text's)."""

    request_id: str = Field(min_length=1, max_length=128)
    tenant: str = Field(min_length=1, max_length=63)
    model: str
    inputs: list[str] | list[list[int]] = Field(min_length=1, max_length=MAX_EMBED_INPUTS)
    normalize: bool = True
    # The vector size the caller asked for: refused before any forward unless it is the model's own.
    dimensions: int | None = Field(None, ge=1)


def other_dimensions(asked: int | None, size: int) -> str | None:
    """Why a request naming `asked` dimensions is refused by a model whose vectors have `size` (None: it
    is not): vectors are never cut. The API checks a cached answer, the worker a fresh one."""
    if asked is None or asked == size:
        return None
    return f"This model's embeddings have {size} dimensions; 'dimensions' may only be that"


class EmbedResponse(BaseModel):
    embeddings: list[list[float]]
    prompt_tokens: int
    dimensions: int = 0  # the model's vector size (0 from a worker that predates it)


# --- the worker registry ---------------------------------------------------------------------------

# A worker registers as soon as it starts, and is sent work only once it has loaded and warmed up its
# model: then it is ready.
STARTING = "starting"
READY = "ready"


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    url: str
    models: tuple[str, ...]
    capacity: int
    load: int  # running + waiting sequences at the last heartbeat
    heartbeat_at: float  # unix time
    state: str = READY  # STARTING or READY (an entry without one comes from a worker that was ready)
    waiting: int | None = None  # of `load`, those queued for a slot; None from a worker that predates it

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerInfo:
        """An entry as a worker wrote it. Fields this version does not know are left out: during a
        rolling upgrade a newer worker's entry must not break an older API process's reading."""
        data = json.loads(raw)
        known = {field.name: data[field.name] for field in fields(cls) if field.name in data}
        known["models"] = tuple(known["models"])
        return cls(**known)


async def write_worker_entry(redis: Redis, worker: WorkerInfo, ttl_s: float) -> None:
    """A worker's heartbeat with Redis: its entry, alive for ttl_s unless renewed."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(WORKER_KEY_PREFIX + worker.worker_id, worker.to_json(), px=int(ttl_s * 1000))
        pipe.sadd(WORKER_INDEX_KEY, worker.worker_id)
        await pipe.execute()


async def remove_worker_entry(redis: Redis, worker_id: str) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(WORKER_KEY_PREFIX + worker_id)
        pipe.srem(WORKER_INDEX_KEY, worker_id)
        await pipe.execute()
