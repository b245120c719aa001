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
class SamplingParams:
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
        if not self.max_tokens >= 1:
            raise InvalidParameter("max_tokens", "max_tokens must be at least 1")
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidParameter("temperature", "temperature must be between 0 and 2")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidParameter("top_p", "top_p must be greater than 0 and at most 1")
        if self.top_k < 0:
            raise InvalidParameter("top_k", "top_k must be 0 (off) or positive")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidParameter("seed", "seed must be a non-negative 64-bit integer")
        if len(self.stop) > MAX_STOP_STRINGS:
            raise InvalidParameter("stop", f"at most {MAX_STOP_STRINGS} stop sequences are supported")
        if any(not s or len(s) > MAX_STOP_LENGTH for s in self.stop):
            raise InvalidParameter("stop", f"stop sequences must be 1 to {MAX_STOP_LENGTH} characters")
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2.0 <= getattr(self, name) <= 2.0:
                raise InvalidParameter(name, f"{name} must be between -2 and 2")
        if not 0.0 < self.repetition_penalty <= 10.0:
            raise InvalidParameter(
                "repetition_penalty", "repetition_penalty must be greater than 0 and at most 10"
            )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def penalized(self) -> bool:
        return bool(self.presence_penalty or self.frequency_penalty or self.repetition_penalty != 1.0)
