"""`GET /admin/workers`: the live workers per model for platform admins (load, queue, last heartbeat,
state, URL), and for no one else."""

from __future__ import annotations

import time
from datetime import datetime

from tests.conftest import TINY_MODEL
from tests.responses import assert_error, assert_status, bearer
from tests.workers import WORKER_SECRET


def test_a_platform_admin_sees_the_live_workers_and_their_load(served, tiny_worker):
    client, admin = served.client, served.admin_headers
    answer = assert_status(client.get("/admin/workers", headers=admin))
    mine = [w for w in answer.json() if w["url"] == tiny_worker.url]
    assert len(mine) == 1, answer.json()
    (worker,) = mine
    health = tiny_worker.health()
    assert worker["models"] == [TINY_MODEL] and worker["state"] == "ready"
    assert worker["capacity"] == health["capacity"]
    assert worker["load"] == 0 and worker["queued"] == 0  # idle: nothing running, nothing queued
    heard = datetime.fromisoformat(worker["heartbeat_at"]).timestamp()
    assert abs(time.time() - heard - worker["heartbeat_age_s"]) < 2
    assert 0 <= worker["heartbeat_age_s"] < 5  # it heartbeats several times a second in tests
    assert WORKER_SECRET not in answer.text  # internal topology for admins, never the secret

    only = assert_status(client.get("/admin/workers", params={"model": TINY_MODEL}, headers=admin)).json()
    assert [w["worker_id"] for w in only] == [worker["worker_id"]]
    none = client.get("/admin/workers", params={"model": "no-such-model"}, headers=admin)
    assert assert_status(none).json() == []


def test_tenant_admins_members_and_keys_are_refused(served, tenant_a):
    client = served.client
    served.create_user(tenant_a.slug, "member@alpha.example.com", headers=tenant_a.admin_headers)
    member = bearer(served.login("member@alpha.example.com", tenant=tenant_a.slug)["access_token"])
    key = bearer(served.create_key(tenant_a, scopes=["inference", "admin", "kb:write"])["key"])
    for headers in (tenant_a.admin_headers, member, key):
        error = assert_error(client.get("/admin/workers", headers=headers), 403)
        assert "platform admin" in error["message"]
    assert_error(client.get("/admin/workers"), 401)
