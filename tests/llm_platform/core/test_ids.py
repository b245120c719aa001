"""Identifiers from llm_platform.core.ids: valid version 4 UUIDs, never repeated, even across a fork."""

from __future__ import annotations

import os
import random
import uuid

from llm_platform.core.ids import new_hex_id, new_uuid


def test_ids_are_version_4_uuids_and_unique():
    ids = [new_uuid() for _ in range(10_000)]
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == len(ids)
    hex_id = new_hex_id()
    assert len(hex_id) == 32 and uuid.UUID(hex_id).version == 4


def test_seeding_the_random_module_does_not_repeat_ids():
    random.seed(7)
    first = new_uuid()
    random.seed(7)
    assert new_uuid() != first


def test_a_forked_child_does_not_repeat_its_parents_ids():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out without running the parent's cleanup
        os.write(write, new_hex_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32 and child != new_hex_id()
