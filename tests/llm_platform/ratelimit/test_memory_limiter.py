"""The in-process limiter's arithmetic (ratelimit/memory_limiter.py) on a clock the test moves: when a
request or a reservation leaves the sliding window, to the millisecond; reservations settled to real
usage (refunded or charged); concurrency slots; quota counters. The Redis limiter gives the same answers
(ratelimit/test_ratelimit.py runs the real-time scenarios on both). No process, no Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from llm_platform.ratelimit import memory_limiter
from llm_platform.ratelimit.admission import Decision, Periods, Scope
from llm_platform.ratelimit.memory_limiter import MemoryLimiter
from tenants.limits import Limits

WINDOW_MS = 60_000
LEASE_TTL_MS = 900_000
START_MS = 1_000_000  # the monotonic clock's reading when a test starts
WALL_MS = 4_000_000_000_000  # the wall clock's (2096): quota counters below expire after it
PERIODS = Periods("2096-10", "2096-10-03", WALL_MS + 30 * 86_400_000, WALL_MS + 86_400_000)


class Clock:
    """Stands in for the `time` module the limiter reads: monotonic and wall time move together."""

    def __init__(self) -> None:
        self.elapsed_ms = 0

    def monotonic_ns(self) -> int:
        return (START_MS + self.elapsed_ms) * 1_000_000

    def time_ns(self) -> int:
        return (WALL_MS + self.elapsed_ms) * 1_000_000

    def at(self, elapsed_ms: int) -> None:
        self.elapsed_ms = elapsed_ms


@pytest.fixture
def clock(monkeypatch) -> Clock:  # type: ignore[no-untyped-def]
    fake = Clock()
    monkeypatch.setattr(memory_limiter, "time", fake)
    return fake


class Scoped:
    """One limiter used through one scope (or more, given), with numbered leases."""

    def __init__(self, *limits: Limits) -> None:
        self.limiter = MemoryLimiter(window_ms=WINDOW_MS, lease_ttl_ms=LEASE_TTL_MS)
        self.scopes = [Scope("tenant-1", f"scope-{n}", each) for n, each in enumerate(limits)]
        self.leases = 0

    async def admit(self, reserve: int = 0) -> tuple[str, Decision]:
        self.leases += 1
        lease = f"lease-{self.leases}"
        return lease, await self.limiter.admit(self.scopes, lease, reserve, PERIODS)

    async def allowed(self, reserve: int = 0) -> bool:
        return (await self.admit(reserve))[1].allowed

    async def settle(self, lease: str, used: int) -> None:
        await self.limiter.settle(self.scopes, lease, used, PERIODS)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_exactly_the_limit_of_requests_is_admitted_within_a_minute(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(requests_per_minute=3))
        assert [await limiter.allowed() for _ in range(3)] == [True, True, True]
        _, refused = await limiter.admit()
        assert (refused.allowed, refused.reason, refused.scope) == (False, "requests", 0)
        assert refused.usage[0].requests == 3  # the refused one is not counted

    run(scenario)


def test_a_request_leaves_the_window_exactly_a_minute_after_it_was_admitted(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(requests_per_minute=2))
        assert await limiter.allowed()  # at 0
        clock.at(20_000)
        assert await limiter.allowed()  # at 20 s
        clock.at(59_999)
        _, refused = await limiter.admit()
        assert refused.reason == "requests" and refused.usage[0].requests_reset_ms == 1
        clock.at(60_000)  # the first is out; the second still in until 80 s
        _, admitted = await limiter.admit()
        assert admitted.allowed and admitted.usage[0].requests == 2
        assert admitted.usage[0].requests_reset_ms == 20_000  # until the one of 20 s leaves
        clock.at(79_999)
        assert not await limiter.allowed()

    run(scenario)


def test_tokens_up_to_the_limit_exactly_are_admitted(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(tokens_per_minute=100))
        assert await limiter.allowed(60)
        _, refused = await limiter.admit(41)  # 60 + 41 > 100
        assert (refused.allowed, refused.reason, refused.usage[0].tokens) == (False, "tokens", 60)
        _, admitted = await limiter.admit(40)  # 60 + 40 = 100
        assert admitted.allowed and admitted.usage[0].tokens == 100

    run(scenario)


def test_a_token_refusal_says_when_enough_tokens_will_have_left(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(tokens_per_minute=100))
        assert await limiter.allowed(30)  # at 0
        clock.at(10_000)
        assert await limiter.allowed(30)  # at 10 s
        clock.at(15_000)
        assert await limiter.allowed(30)  # at 15 s: 90 in the window
        clock.at(20_000)
        _, needs_one = await limiter.admit(40)  # 30 over: the first reservation's leaving frees enough
        assert needs_one.usage[0].tokens_reset_ms == 40_000
        _, needs_two = await limiter.admit(70)  # 60 over: the first two must leave
        assert needs_two.usage[0].tokens_reset_ms == 50_000
        _, never = await limiter.admit(101)  # more than the limit itself: waiting never helps
        assert never.usage[0].tokens_reset_ms == -1
        assert never.retry_after_s(PERIODS, 0) == 1

    run(scenario)


def test_settling_refunds_what_a_request_reserved_but_did_not_use(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(tokens_per_minute=100))
        lease, _ = await limiter.admit(80)
        assert not await limiter.allowed(30)
        await limiter.settle(lease, 20)  # it used 20 of its 80
        _, admitted = await limiter.admit(80)
        assert admitted.allowed and admitted.usage[0].tokens == 100

    run(scenario)


def test_settling_charges_what_a_request_used_beyond_its_reservation(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(tokens_per_minute=100))
        lease, _ = await limiter.admit(10)
        await limiter.settle(lease, 95)
        _, refused = await limiter.admit(10)
        assert (refused.reason, refused.usage[0].tokens) == ("tokens", 95)

    run(scenario)


def test_settled_tokens_leave_the_window_a_minute_after_admission_not_after_settling(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(tokens_per_minute=100))
        lease, _ = await limiter.admit(50)
        clock.at(30_000)
        await limiter.settle(lease, 100)  # a long answer, settled 30 s in
        clock.at(59_999)
        assert not await limiter.allowed(1)
        clock.at(60_000)
        _, admitted = await limiter.admit(100)
        assert admitted.allowed and admitted.usage[0].tokens == 100

    run(scenario)


def test_a_lease_is_settled_once(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(tokens_per_minute=100, monthly_tokens=1000))
        await limiter.limiter.seed_quota(limiter.scopes[0], PERIODS.month, 0, PERIODS.month_ends_ms)
        lease, _ = await limiter.admit(50)
        await limiter.settle(lease, 10)
        await limiter.settle(lease, 10)  # a retried settlement refunds nothing more
        _, admitted = await limiter.admit(0)
        assert (admitted.usage[0].tokens, admitted.usage[0].month_tokens) == (10, 10)

    run(scenario)


def test_a_concurrency_slot_is_held_until_settled_or_its_lease_expires(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(concurrent_requests=2))
        first, _ = await limiter.admit()
        assert await limiter.allowed()
        _, busy = await limiter.admit()
        assert (busy.allowed, busy.reason) == (False, "concurrency")
        await limiter.settle(first, 0)
        assert await limiter.allowed()  # the settled one's slot
        clock.at(LEASE_TTL_MS - 1)
        assert not await limiter.allowed()  # unsettled leases still hold both
        clock.at(LEASE_TTL_MS + 1)  # the first unsettled one's slot is back (a replica that died)
        assert await limiter.allowed()

    run(scenario)


def test_a_quota_counter_must_be_seeded_before_anything_is_admitted(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(daily_tokens=100))
        _, missing = await limiter.admit(10)
        assert (missing.allowed, missing.reason, missing.rebuild) == (False, None, (0, "day"))
        await limiter.limiter.seed_quota(limiter.scopes[0], PERIODS.day, 70, PERIODS.day_ends_ms)
        await limiter.limiter.seed_quota(limiter.scopes[0], PERIODS.day, 0, PERIODS.day_ends_ms)  # kept
        _, admitted = await limiter.admit(30)  # 70 + 30 = 100: the quota exactly
        assert admitted.allowed and admitted.usage[0].day_tokens == 100
        _, spent = await limiter.admit(1)
        assert (spent.allowed, spent.reason) == (False, "daily_quota")

    run(scenario)


def test_a_quota_is_charged_the_reservation_then_the_real_usage(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(monthly_tokens=100, daily_tokens=100))
        for period, ends in ((PERIODS.month, PERIODS.month_ends_ms), (PERIODS.day, PERIODS.day_ends_ms)):
            await limiter.limiter.seed_quota(limiter.scopes[0], period, 0, ends)
        lease, admitted = await limiter.admit(60)
        assert (admitted.usage[0].month_tokens, admitted.usage[0].day_tokens) == (60, 60)
        await limiter.settle(lease, 25)
        _, after = await limiter.admit(75)  # 25 + 75 = 100
        assert after.allowed and (after.usage[0].month_tokens, after.usage[0].day_tokens) == (100, 100)

    run(scenario)


def test_a_quota_counter_expires_with_its_period_and_is_seeded_again(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(daily_tokens=100))
        await limiter.limiter.seed_quota(limiter.scopes[0], PERIODS.day, 100, WALL_MS + 5_000)
        assert (await limiter.admit(1))[1].reason == "daily_quota"
        clock.at(5_000)  # past the counter's expiry: it is gone, to be rebuilt from the ledger
        assert (await limiter.admit(1))[1].rebuild == (0, "day")

    run(scenario)


def test_quotas_are_checked_before_rates_and_rates_before_concurrency(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(requests_per_minute=1, concurrent_requests=1, daily_tokens=10))
        await limiter.limiter.seed_quota(limiter.scopes[0], PERIODS.day, 0, PERIODS.day_ends_ms)
        assert await limiter.allowed(5)
        assert (await limiter.admit(6))[1].reason == "daily_quota"  # over all three: the quota is named
        assert (await limiter.admit(5))[1].reason == "requests"  # over the rate and the slots

    run(scenario)


def test_every_scope_must_admit_and_a_refusal_counts_nothing_in_any(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(requests_per_minute=10), Limits(requests_per_minute=1))  # tenant, key
        assert await limiter.allowed()
        _, refused = await limiter.admit()
        assert (refused.reason, refused.scope) == ("requests", 1)
        assert [usage.requests for usage in refused.usage] == [1, 1]  # the tenant's was not counted

    run(scenario)


def test_a_removed_quota_drops_its_counter(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(daily_tokens=100))
        await limiter.limiter.seed_quota(limiter.scopes[0], PERIODS.day, 90, PERIODS.day_ends_ms)
        limiter.scopes[0] = Scope("tenant-1", "scope-0", Limits())  # an admin removed the quota
        assert await limiter.allowed(50)
        limiter.scopes[0] = Scope("tenant-1", "scope-0", Limits(daily_tokens=100))  # and set it again
        assert (await limiter.admit(1))[1].rebuild == (0, "day")  # rebuilt from the ledger, never stale

    run(scenario)


def test_peek_counts_without_admitting_and_clear_forgets(clock):
    async def scenario() -> None:
        limiter = Scoped(Limits(requests_per_minute=5))
        assert await limiter.allowed()
        clock.at(15_000)
        assert await limiter.limiter.peek(limiter.scopes[0]) == (1, 45_000)
        assert await limiter.limiter.peek(limiter.scopes[0]) == (1, 45_000)
        await limiter.limiter.clear(limiter.scopes[0])
        assert await limiter.limiter.peek(limiter.scopes[0]) == (0, 0)

    run(scenario)
