"""What an admission decision says (ratelimit/admission.py): limits read from a row, and how long a
refused client is told to wait. Pure logic."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llm_platform.ratelimit.admission import WINDOW_MS, Decision, Periods, ScopeUsage
from tenants.limits import Limits

# November 2026: the month ends 2026-12-01T00:00Z, the day 2026-11-24T00:00Z.
PERIODS = Periods("2026-11", "2026-11-23", 1_796_083_200_000, 1_795_478_400_000)
NOON = 1_795_435_200_000  # 2026-11-23T12:00Z


def refused(reason: str, requests_reset_ms: int = 0, tokens_reset_ms: int = 0) -> Decision:
    usage = ScopeUsage(5, 100, requests_reset_ms, tokens_reset_ms, 0, 0)
    return Decision(False, reason, 0, (usage,))


def test_limits_are_per_sliding_minute():
    assert WINDOW_MS == 60_000


def test_limits_read_from_a_row_of_limit_columns():
    row = SimpleNamespace(
        requests_per_minute=60,
        tokens_per_minute=10_000,
        concurrent_requests=4,
        monthly_token_quota=1_000_000,
        daily_token_quota=50_000,
    )
    assert Limits.of(row) == Limits(
        requests_per_minute=60,
        tokens_per_minute=10_000,
        concurrent_requests=4,
        monthly_tokens=1_000_000,
        daily_tokens=50_000,
    )


def test_no_row_or_null_columns_mean_unlimited():
    assert Limits.of(None) == Limits() == Limits(None, None, None, None, None)
    row = SimpleNamespace(
        requests_per_minute=None,
        tokens_per_minute=7,
        concurrent_requests=None,
        monthly_token_quota=None,
        daily_token_quota=None,
    )
    assert Limits.of(row) == Limits(tokens_per_minute=7)


@pytest.mark.parametrize(
    ("reset_ms", "retry_after_s"),
    [(1, 1), (999, 1), (1000, 1), (1001, 2), (59_999, 60), (60_000, 60), (0, 1), (-5, 1)],
)
def test_a_rate_refusal_waits_whole_seconds_rounded_up_and_at_least_one(reset_ms, retry_after_s):
    assert refused("requests", requests_reset_ms=reset_ms).retry_after_s(PERIODS, NOON) == retry_after_s
    assert refused("tokens", tokens_reset_ms=reset_ms).retry_after_s(PERIODS, NOON) == retry_after_s


def test_a_request_larger_than_the_token_limit_is_told_one_second():
    # tokens_reset_ms -1: waiting never helps; the message says to lower max_tokens.
    assert refused("tokens", tokens_reset_ms=-1).retry_after_s(PERIODS, NOON) == 1


def test_a_spent_quota_waits_until_its_period_ends():
    assert refused("daily_quota").retry_after_s(PERIODS, NOON) == 12 * 3600
    assert refused("monthly_quota").retry_after_s(PERIODS, NOON) == 7 * 86_400 + 12 * 3600
    last_ms = PERIODS.day_ends_ms - 1
    assert refused("daily_quota").retry_after_s(PERIODS, last_ms) == 1


def test_a_concurrency_refusal_waits_one_second():
    assert refused("concurrency").retry_after_s(PERIODS, NOON) == 1
