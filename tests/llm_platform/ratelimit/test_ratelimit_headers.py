"""The x-ratelimit-* headers: OpenAI's duration format, and the tightest scope wins."""

from __future__ import annotations

from llm_platform.ratelimit.admission import Decision, Scope, ScopeUsage
from llm_platform.ratelimit.headers import duration, rate_limit_headers
from tenants.limits import Limits


def test_durations_read_like_openais():
    assert [duration(ms) for ms in (0, 20, 1500, 59_999, 360_000, 61_500)] == [
        "0ms",
        "20ms",
        "1.5s",
        "59.999s",
        "6m0s",
        "1m1s",
    ]


def test_the_scope_with_the_fewest_remaining_is_reported():
    scopes = [
        Scope("t", "tenant", Limits(requests_per_minute=100, tokens_per_minute=1000)),
        Scope("t", "key:1", Limits(requests_per_minute=10)),
    ]
    usage = (ScopeUsage(50, 400, 1000, 2000, 0, 0), ScopeUsage(9, 400, 3000, 2000, 0, 0))
    headers = rate_limit_headers(scopes, Decision(True, None, -1, usage))
    assert headers == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "3s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "600",
        "x-ratelimit-reset-tokens": "2s",
    }
