"""Fair admission: round-robin, fair shares, headroom for the under-served, bounded queue."""

from __future__ import annotations

import pytest

from models_registry.engine.scheduler import FairScheduler, QueueFull


def always(_: object) -> bool:
    return True


def test_round_robin_between_tenants():
    scheduler: FairScheduler[str] = FairScheduler(max_running=4, headroom=0, max_queued=100)
    for n in range(4):
        scheduler.enqueue("a", f"a{n}", f"a{n}")
    for n in range(4):
        scheduler.enqueue("b", f"b{n}", f"b{n}")
    admitted = [item for _, item in scheduler.admit(always)]
    assert sorted(admitted) == ["a0", "a1", "b0", "b1"]


def test_a_flooding_tenant_does_not_starve_a_newcomer():
    scheduler: FairScheduler[str] = FairScheduler(max_running=4, headroom=1, max_queued=100)
    for n in range(8):
        scheduler.enqueue("a", f"a{n}", f"a{n}")
    assert len(scheduler.admit(always)) == 4  # alone, A may use every slot
    scheduler.enqueue("b", "b0", "b0")
    # Every slot is A's, but B is below its share: it takes the headroom slot at once.
    assert [item for _, item in scheduler.admit(always)] == ["b0"]
    scheduler.enqueue("b", "b1", "b1")
    scheduler.release("a")
    scheduler.release("a")
    # A is above its share (2 of 4) while B waits: the freed slot goes to B, not to A's backlog.
    assert [item for _, item in scheduler.admit(always)] == ["b1"]


def test_cancelled_waiting_requests_leave_the_queue():
    scheduler: FairScheduler[str] = FairScheduler(max_running=1, headroom=0, max_queued=2)
    scheduler.enqueue("a", "a0", "a0")
    scheduler.enqueue("a", "a1", "a1")
    with pytest.raises(QueueFull):
        scheduler.enqueue("b", "b0", "b0")
    assert scheduler.remove("a1") == "a1"
    scheduler.enqueue("b", "b0", "b0")
    assert scheduler.waiting == 2


def test_requests_that_do_not_fit_wait():
    scheduler: FairScheduler[int] = FairScheduler(max_running=4, headroom=0, max_queued=10)
    scheduler.enqueue("a", "big", 1000)
    scheduler.enqueue("a", "small", 1)
    assert scheduler.admit(lambda size: size < 100) == []  # FIFO within a tenant
    assert [item for _, item in scheduler.admit(always)] == [1000, 1]
