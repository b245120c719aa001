"""Per-request sampling parameters and their validation. Anything the engine cannot honour is refused."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_STOP_STRINGS = 4
MAX_STOP_LENGTH = 64


class InvalidParameter(ValueError):
    """A request the engine cannot serve as asked; `param` names the offending field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


class ContextLengthExceeded(ValueError):
    """Prompt plus requested completion does not fit in the model's context."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_length = context_length
        super().__init__(
            f"This model's maximum context length is {context_length} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
            f"completion). Please reduce the length of the messages or completion."
        )


@dataclass(frozen=True)
class Range:
    """A numeric sampling parameter's bounds (None: none that side) and the refusal naming them.

    The one description of each range: the engine checks it here, and the wire schemas (the OpenAI API,
    the tenant's /chat, the catalogue's default_params) take their field constraints from it, so the
    OpenAPI document and the engine cannot disagree. Bounds keep the type the document shows (2, not 2.0).
    """

    message: str
    ge: int | None = None
    gt: int | None = None
    le: int | None = None
    lt: int | None = None

    def admits(self, value: float) -> bool:
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )


RANGES: dict[str, Range] = {
    "max_tokens": Range("max_tokens must be at least 1", ge=1),
    "temperature": Range("temperature must be between 0 and 2", ge=0, le=2),
    "top_p": Range("top_p must be greater than 0 and at most 1", gt=0, le=1),
    "top_k": Range("top_k must be 0 (off) or positive", ge=0),
    "seed": Range("seed must be a non-negative 64-bit integer", ge=0, lt=2**63),
    "presence_penalty": Range("presence_penalty must be between -2 and 2", ge=-2, le=2),
    "frequency_penalty": Range("frequency_penalty must be between -2 and 2", ge=-2, le=2),
    "repetition_penalty": Range("repetition_penalty must be greater than 0 and at most 10", gt=0, le=10),
}


@dataclass(frozen=True)
class SamplingParams:
    """Also the defaults of every parameter a request leaves out (the wire shapes and the API's
    resolution read them from here); max_tokens' default is the platform's (LLMP_DEFAULT_MAX_TOKENS),
    resolved by the API: 256 is for the engine's own callers (tests, benchmarks)."""

    max_tokens: int = 256
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    presence_penalty: float = 0.0  # OpenAI semantics, on generated tokens
    frequency_penalty: float = 0.0  # OpenAI semantics, on generated tokens
    repetition_penalty: float = 1.0  # transformers semantics, on prompt and generated tokens
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks, load tests); vLLM has the same

    def __post_init__(self) -> None:
        for name, allowed in RANGES.items():
            value = getattr(self, name)
            if value is not None and not allowed.admits(value):
                raise InvalidParameter(name, allowed.message)
        if len(self.stop) > MAX_STOP_STRINGS:
            raise InvalidParameter("stop", f"at most {MAX_STOP_STRINGS} stop sequences are supported")
        if any(not s or len(s) > MAX_STOP_LENGTH for s in self.stop):
            raise InvalidParameter("stop", f"stop sequences must be 1 to {MAX_STOP_LENGTH} characters")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def penalized(self) -> bool:
        return bool(self.presence_penalty or self.frequency_penalty or self.repetition_penalty != 1.0)
