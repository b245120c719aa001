"""Fair admission across tenants.

Requests wait in per-tenant queues and are admitted round-robin. Round-robin alone is not enough when
one tenant already holds every running slot, so slots are shared: with n tenants active, a tenant's fair
share is ceil(max_running / n). A tenant at or above its share gets no new slot while others wait, and a
tenant below its share may take one of a few headroom slots above the cap, so its first token comes
within a step or two instead of after the other tenant's backlog drains.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class QueueFull(RuntimeError):
    """The admission queue is at its bound; the caller should retry later."""


class FairScheduler(Generic[Item]):
    def __init__(self, max_running: int, headroom: int, max_queued: int) -> None:
        self.max_running = max_running
        self.headroom = headroom
        self.max_queued = max_queued
        self._queues: dict[str, deque[tuple[str, Item]]] = {}
        self._turns: deque[str] = deque()  # tenants with waiting requests, in round-robin order
        self.running: Counter[str] = Counter()
        self.waiting = 0

    def enqueue(self, tenant: str, request_id: str, item: Item) -> None:
        if self.waiting >= self.max_queued:
            raise QueueFull(f"admission queue is full ({self.max_queued} waiting)")
        if tenant not in self._queues:
            self._queues[tenant] = deque()
            self._turns.append(tenant)
        self._queues[tenant].append((request_id, item))
        self.waiting += 1

    def remove(self, request_id: str) -> Item | None:
        """Takes a waiting request out of its queue (cancellation); None if it is not waiting."""
        for tenant, queue in self._queues.items():
            for entry in queue:
                if entry[0] == request_id:
                    queue.remove(entry)
                    self.waiting -= 1
                    if not queue:
                        self._drop_tenant(tenant)
                    return entry[1]
        return None

    def admit(self, fits: Callable[[Item], bool]) -> list[tuple[str, Item]]:
        """Picks the requests to start now, given what the engine can hold (`fits`)."""
        admitted: list[tuple[str, Item]] = []
        while self._turns and self._admit_one(fits, admitted):
            pass
        return admitted

    def drain(self) -> list[Item]:
        """Empties every queue (shutdown); returns what was waiting."""
        items = [item for queue in self._queues.values() for _, item in queue]
        self._queues.clear()
        self._turns.clear()
        self.waiting = 0
        return items

    def release(self, tenant: str) -> None:
        """A running request of this tenant finished or was cancelled."""
        self.running[tenant] -= 1
        if self.running[tenant] <= 0:
            del self.running[tenant]

    def _admit_one(self, fits: Callable[[Item], bool], admitted: list[tuple[str, Item]]) -> bool:
        total = sum(self.running.values())
        if total >= self.max_running + self.headroom:
            return False
        active = set(self.running) | set(self._turns)
        share = math.ceil(self.max_running / len(active))
        for _ in range(len(self._turns)):
            tenant = self._turns[0]
            self._turns.rotate(-1)  # whoever is looked at goes to the back of the line
            below_share = self.running[tenant] < share
            others_waiting = len(self._turns) > 1
            # Within the cap: anyone below their share, or anyone when nobody else waits.
            # In the headroom above it: only the under-served.
            allowed = below_share or (total < self.max_running and not others_waiting)
            _, item = self._queues[tenant][0]
            if allowed and fits(item):
                self._queues[tenant].popleft()
                self.waiting -= 1
                if not self._queues[tenant]:
                    self._drop_tenant(tenant)
                self.running[tenant] += 1
                admitted.append((tenant, item))
                return True
        return False

    def _drop_tenant(self, tenant: str) -> None:
        del self._queues[tenant]
        self._turns.remove(tenant)
