"""The `x-ratelimit-*` headers OpenAI clients read, from an admission decision.

Per dimension (requests, tokens) they describe the tightest scope that limits it (tenant or API key):
the one with the fewest remaining. A dimension nobody limits gets no headers.
"""

from __future__ import annotations

from collections.abc import Callable

from llm_platform.ratelimit.admission import WINDOW_MS, Decision, Scope, ScopeUsage
from tenants.limits import Limits

_DIMENSIONS: tuple[
    tuple[str, Callable[[Limits], int | None], Callable[[ScopeUsage], tuple[int, int]]], ...
] = (
    ("requests", lambda limits: limits.requests_per_minute, lambda u: (u.requests, u.requests_reset_ms)),
    ("tokens", lambda limits: limits.tokens_per_minute, lambda u: (u.tokens, u.tokens_reset_ms)),
)

# Every header name rate_limit_headers may send (browsers may read only those CORS exposes).
RATE_LIMIT_HEADER_NAMES = tuple(
    f"x-ratelimit-{kind}-{dimension}"
    for dimension, _, _ in _DIMENSIONS
    for kind in ("limit", "remaining", "reset")
)


def rate_limit_headers(scopes: list[Scope], decision: Decision) -> dict[str, str]:
    headers: dict[str, str] = {}
    for dimension, limit_of, used_of in _DIMENSIONS:
        tightest: tuple[int, int, int] | None = None
        for scope, usage in zip(scopes, decision.usage, strict=True):
            limit = limit_of(scope.limits)
            if limit is None:
                continue
            used, reset_ms = used_of(usage)
            remaining = max(0, limit - used)
            if tightest is None or remaining < tightest[1]:
                tightest = (limit, remaining, reset_ms if reset_ms >= 0 else WINDOW_MS)
        if tightest is not None:
            headers[f"x-ratelimit-limit-{dimension}"] = str(tightest[0])
            headers[f"x-ratelimit-remaining-{dimension}"] = str(tightest[1])
            headers[f"x-ratelimit-reset-{dimension}"] = duration(tightest[2])
    return headers


def duration(milliseconds: int) -> str:
    """OpenAI's format: `20ms`, `1.5s`, `6m0s`."""
    if milliseconds < 1000:
        return f"{max(0, milliseconds)}ms"
    if milliseconds < 60_000:
        return f"{round(milliseconds / 1000, 3):g}s"
    minutes, rest = divmod(milliseconds, 60_000)
    return f"{minutes}m{rest // 1000}s"
