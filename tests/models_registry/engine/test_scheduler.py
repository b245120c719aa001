"""Fair admission (engine/scheduler.py), as a table of choices: which waiting request starts next, how
many slots a tenant may hold while others wait, the headroom for the under-served, the bounded queue,
cancellation and shutdown. Pure logic: no model, no thread."""

from __future__ import annotations

import pytest

from models_registry.engine.scheduler import FairScheduler, QueueFull


def always(_: object) -> bool:
    return True


def scheduler_with(max_running: int, headroom: int = 0, max_queued: int = 100, **waiting: int):
    """A scheduler with `waiting[tenant]` requests queued per tenant, named tenant + index (a0, a1...)."""
    scheduler: FairScheduler[str] = FairScheduler(max_running, headroom, max_queued)
    for tenant, count in waiting.items():
        for n in range(count):
            scheduler.enqueue(tenant, f"{tenant}{n}", f"{tenant}{n}")
    return scheduler


def admitted(scheduler: FairScheduler[str], fits=always) -> list[str]:  # type: ignore[no-untyped-def]
    return [item for _, item in scheduler.admit(fits)]


def test_round_robin_between_tenants():
    scheduler = scheduler_with(4, a=4, b=4)
    assert admitted(scheduler) == ["a0", "b0", "a1", "b1"]  # turns alternate, each tenant's queue FIFO


def test_the_turn_goes_on_from_where_it_stopped():
    scheduler = scheduler_with(3, a=3, b=3, c=3)
    assert admitted(scheduler) == ["a0", "b0", "c0"]
    scheduler.release("b")
    assert admitted(scheduler) == ["b1"]  # every tenant holds its share of 1: only b is below it
    for tenant in "abc":
        scheduler.release(tenant)
    assert admitted(scheduler) == ["c1", "a1", "b2"]  # b had the last turn: c is next


def test_a_lone_tenant_may_take_every_slot_but_not_the_headroom():
    scheduler = scheduler_with(4, headroom=2, a=8)
    assert admitted(scheduler) == ["a0", "a1", "a2", "a3"]
    assert scheduler.running == {"a": 4} and scheduler.waiting == 4
    assert admitted(scheduler) == []  # the headroom is for tenants below their share


def test_a_flooding_tenant_does_not_starve_a_newcomer():
    scheduler = scheduler_with(4, headroom=1, a=8)
    assert len(scheduler.admit(always)) == 4  # alone, A may use every slot
    scheduler.enqueue("b", "b0", "b0")
    # Every slot is A's, but B is below its share: it takes the headroom slot at once.
    assert admitted(scheduler) == ["b0"]
    scheduler.enqueue("b", "b1", "b1")
    scheduler.release("a")
    scheduler.release("a")
    # A is above its share (2 of 4) while B waits: the freed slot goes to B, not to A's backlog.
    assert admitted(scheduler) == ["b1"]


def test_nothing_starts_beyond_the_slots_and_the_headroom():
    scheduler = scheduler_with(2, headroom=1, a=2)
    assert admitted(scheduler) == ["a0", "a1"]
    scheduler.enqueue("b", "b0", "b0")
    scheduler.enqueue("c", "c0", "c0")
    # b and c are both below their share (1 of 2), but only one headroom slot exists.
    assert admitted(scheduler) == ["b0"]
    assert sum(scheduler.running.values()) == 3
    scheduler.release("a")
    assert admitted(scheduler) == ["c0"]


def test_the_fair_share_counts_tenants_that_are_running_but_not_waiting():
    scheduler = scheduler_with(4, a=1, b=1, c=1)
    assert admitted(scheduler) == ["a0", "b0", "c0"]
    for n in range(1, 4):
        scheduler.enqueue("a", f"a{n}", f"a{n}")
    # Three tenants are active: a's share is ceil(4 / 3) = 2, and nobody else waits for the 4th slot.
    assert admitted(scheduler) == ["a1"]
    assert scheduler.running["a"] == 2
    scheduler.release("b")
    scheduler.release("c")
    # b and c are done: a alone is active, its share is all 4 slots.
    assert admitted(scheduler) == ["a2", "a3"]


def test_within_the_cap_anyone_may_take_a_free_slot_when_nobody_else_waits():
    scheduler = scheduler_with(4, a=2, b=2)
    assert admitted(scheduler) == ["a0", "b0", "a1", "b1"]
    scheduler.release("b")
    scheduler.enqueue("a", "a2", "a2")
    assert admitted(scheduler) == ["a2"]  # a is at its share (2 of 4), but the slot would stay empty


def test_a_tenant_at_its_share_leaves_a_free_slot_to_a_waiting_one():
    scheduler: FairScheduler[int] = FairScheduler(max_running=4, headroom=0, max_queued=100)
    for n in range(4):
        scheduler.enqueue("a", f"a{n}", 1)
    scheduler.enqueue("b", "big", 1000)
    # b's request does not fit yet; a stops at its share (2 of 4) rather than take b's slots.
    assert scheduler.admit(lambda size: size < 100) == [("a", 1), ("a", 1)]
    assert scheduler.admit(always) == [("b", 1000), ("a", 1)]


def test_requests_that_do_not_fit_wait():
    scheduler: FairScheduler[int] = FairScheduler(max_running=4, headroom=0, max_queued=10)
    scheduler.enqueue("a", "big", 1000)
    scheduler.enqueue("a", "small", 1)
    assert scheduler.admit(lambda size: size < 100) == []  # FIFO within a tenant
    assert [item for _, item in scheduler.admit(always)] == [1000, 1]


def test_a_request_that_does_not_fit_does_not_hold_back_other_tenants():
    scheduler: FairScheduler[int] = FairScheduler(max_running=4, headroom=0, max_queued=10)
    scheduler.enqueue("a", "big", 1000)
    scheduler.enqueue("b", "small", 1)
    assert scheduler.admit(lambda size: size < 100) == [("b", 1)]
    assert scheduler.waiting == 1


def test_the_queue_holds_exactly_max_queued_across_tenants():
    scheduler = scheduler_with(1, max_queued=3, a=2, b=1)
    with pytest.raises(QueueFull, match=r"admission queue is full \(3 waiting\)"):
        scheduler.enqueue("c", "c0", "c0")
    assert admitted(scheduler) == ["a0"]  # a started: its place in the queue is free again
    scheduler.enqueue("c", "c0", "c0")
    assert scheduler.waiting == 3


def test_cancelled_waiting_requests_leave_the_queue():
    scheduler = scheduler_with(1, max_queued=2, a=2)
    with pytest.raises(QueueFull):
        scheduler.enqueue("b", "b0", "b0")
    assert scheduler.remove("a1") == "a1"
    scheduler.enqueue("b", "b0", "b0")
    assert scheduler.waiting == 2


def test_removing_a_request_that_is_not_waiting_changes_nothing():
    scheduler = scheduler_with(1, a=2)
    assert admitted(scheduler) == ["a0"]
    assert scheduler.remove("a0") is None  # running: the engine cancels it, not the queue
    assert scheduler.remove("nobody") is None
    assert scheduler.waiting == 1 and scheduler.running == {"a": 1}


def test_a_tenant_whose_last_request_is_cancelled_leaves_the_rotation():
    scheduler = scheduler_with(2, a=1, b=2)
    assert scheduler.remove("a0") == "a0"
    # With a gone, b is alone: its share is both slots.
    assert admitted(scheduler) == ["b0", "b1"]


def test_release_frees_the_slot_and_forgets_an_idle_tenant():
    scheduler = scheduler_with(2, a=2)
    assert admitted(scheduler) == ["a0", "a1"]
    scheduler.release("a")
    assert scheduler.running == {"a": 1}
    scheduler.release("a")
    assert "a" not in scheduler.running  # no longer active: it does not shrink others' shares


def test_drain_hands_back_everything_waiting_and_empties_the_queues():
    scheduler = scheduler_with(1, max_queued=3, a=2, b=1)
    assert admitted(scheduler) == ["a0"]
    assert sorted(scheduler.drain()) == ["a1", "b0"]
    assert scheduler.waiting == 0
    assert admitted(scheduler) == []
    scheduler.enqueue("c", "c0", "c0")  # the queue takes requests again
    assert scheduler.waiting == 1
