"""The audit log over the real path: what a row says, who may read it, pagination, and tamper evidence."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import text

from tests.conftest import QUESTION, TINY_MODEL
from tests.responses import assert_error, assert_status, bearer, sse_chunks


def test_a_chat_call_is_one_row_with_what_happened(served, tenant_a):
    key = served.create_key(tenant_a)
    body = json.dumps({"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 4, "temperature": 0}).encode()
    response = served.client.post(
        "/v1/chat/completions",
        content=body,
        headers={
            **bearer(key["key"]),
            "Content-Type": "application/json",
            "User-Agent": "audit-test/1.0",
            "X-Request-ID": "trace-0001",
        },
    )
    assert response.status_code == 200
    [row] = served.audit_rows(tenant_a, action="chat_completions")
    usage = response.json()["usage"]
    assert row["tenant_id"] == tenant_a.id and row["status"] == 200
    assert row["actor_kind"] == "api_key" and row["actor_id"] == key["id"]
    assert row["key_prefix"] == key["prefix"] and row["resource"] == "/v1/chat/completions"
    assert row["model"] == TINY_MODEL and row["cache_hit"] is False
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert row["request_id"] == response.headers["x-request-id"] == "trace-0001"  # the client's own id
    assert row["request_sha256"] == hashlib.sha256(body).hexdigest()
    assert row["response_sha256"] == hashlib.sha256(response.content).hexdigest()
    assert row["user_agent"] == "audit-test/1.0" and row["client_address"]
    assert row["latency_ms"] >= 0
    assert row["request_text"] is None and row["response_text"] is None  # off by default


def test_text_is_kept_only_where_the_tenant_says_so(served, tenant_a):
    served.update_settings(tenant_a, audit_store_text=True)
    key = served.create_key(tenant_a)["key"]
    streamed = served.client.post(
        "/v1/chat/completions",
        json={"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 4, "stream": True},
        headers=bearer(key),
    )
    assert streamed.status_code == 200
    [row] = served.audit_rows(tenant_a, action="chat_completions")
    assert json.loads(row["request_text"]) == QUESTION
    chunks = sse_chunks(streamed)
    answer = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert row["response_text"] == answer and row["completion_tokens"] >= 1


def test_a_nul_in_a_path_does_not_hold_back_the_audit_log(platform, tenant_a):
    # `%00` decodes to a NUL in the path, which Postgres text cannot hold: the row keeps U+FFFD instead,
    # and the rows batched with it are written (one unstorable row used to send the batch to the spool).
    unknown = platform.client.post(f"/{tenant_a.slug}%00/conversations", json={})
    # Credentials are checked before the tenant is looked up: a caller without any learns no tenant names.
    assert_error(unknown, 401, "invalid_credentials")
    created = platform.client.post(f"/{tenant_a.slug}/conversations", json={}, headers=tenant_a.admin_headers)
    assert created.status_code == 201
    [row] = platform.audit_rows(tenant_a, action="create_conversation")
    assert row["status"] == 201
    platform_rows = assert_status(
        platform.client.get("/admin/audit", params={"limit": 50}, headers=platform.admin_headers)
    )
    resources = [r["resource"] for r in platform_rows.json()["data"]]
    assert f"/{tenant_a.slug}\ufffd/conversations" in resources


def test_admin_actions_and_logins_are_audited(served, tenant_a):
    key = served.create_key(tenant_a)
    assert_status(
        served.client.delete(f"/{tenant_a.slug}/admin/keys/{key['id']}", headers=tenant_a.admin_headers)
    )
    served.set_limits(tenant_a, requests_per_minute=10)
    wrong = {"username": tenant_a.admin_email, "password": "not-the-password", "tenant": tenant_a.slug}
    assert served.client.post("/auth/token", data=wrong).status_code == 401
    served.login(tenant_a.admin_email, tenant=tenant_a.slug)
    rows = served.audit_rows(tenant_a)
    actions = [row["action"] for row in rows]
    for action in ("create_api_key", "revoke_api_key", "put_limits", "issue_token"):
        assert action in actions, actions
    [revoked] = [row for row in rows if row["action"] == "revoke_api_key"]
    assert revoked["resource"].endswith(key["id"]) and revoked["status"] == 200
    [login] = [row for row in rows if row["action"] == "issue_token" and row["status"] == 200][:1]
    assert login["actor_kind"] == "user" and login["request_sha256"] is None  # a password is never hashed
    # The failed login has no known actor: it lands in the platform's chain, naming the account tried.
    platform_rows = served.client.get(
        "/admin/audit", params={"action": "issue_token", "status": 401}, headers=served.admin_headers
    ).json()["data"]
    assert any(tenant_a.admin_email in row["resource"] for row in platform_rows)


def test_only_admins_read_the_audit_log_and_only_their_tenants(served, tenant_a, tenant_b):
    served.create_user(tenant_a.slug, "member@a.example.com", headers=tenant_a.admin_headers)
    member = bearer(served.login("member@a.example.com", tenant=tenant_a.slug)["access_token"])
    assert_error(served.client.get(f"/{tenant_a.slug}/admin/audit", headers=member), 403)
    assert_error(served.client.get(f"/{tenant_a.slug}/admin/audit/verify", headers=member), 403)
    assert_error(served.client.get(f"/{tenant_b.slug}/admin/audit", headers=tenant_a.admin_headers), 404)
    served.create_key(tenant_b)
    assert not any(row["tenant_id"] == tenant_b.id for row in served.audit_rows(tenant_a))
    everyone = assert_status(served.client.get("/admin/audit", headers=served.admin_headers)).json()["data"]
    assert {tenant_a.id, tenant_b.id} <= {row["tenant_id"] for row in everyone}
    only_b = assert_status(
        served.client.get("/admin/audit", params={"tenant": tenant_b.slug}, headers=served.admin_headers)
    )
    assert {row["tenant_id"] for row in only_b.json()["data"]} == {tenant_b.id}


def test_filters_and_cursor_pages(served, tenant_a):
    for index in range(23):
        assert_status(
            served.client.post(
                f"/{tenant_a.slug}/conversations", json={"title": f"c{index}"}, headers=tenant_a.admin_headers
            ),
            201,
        )
    served.audit_rows(tenant_a)  # flushed
    seen, cursor = [], None
    while True:
        params = {"action": "create_conversation", "limit": 10, **({"cursor": cursor} if cursor else {})}
        page = assert_status(
            served.client.get(f"/{tenant_a.slug}/admin/audit", params=params, headers=tenant_a.admin_headers)
        )
        body = page.json()
        seen += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 23 and len({row["id"] for row in seen}) == 23
    assert [row["at"] for row in seen] == sorted((row["at"] for row in seen), reverse=True)
    assert_error(
        served.client.get(
            f"/{tenant_a.slug}/admin/audit", params={"cursor": "nonsense"}, headers=tenant_a.admin_headers
        ),
        400,
        "invalid_cursor",
    )


def test_a_thousand_requests_make_a_thousand_rows(served, tenant_a, db_engine):
    key = bearer(served.create_key(tenant_a)["key"])
    for index in range(1000):
        created = served.client.post(
            f"/{tenant_a.slug}/conversations", json={"title": str(index)}, headers=key
        )
        assert created.status_code == 201
    served.audit_rows(tenant_a)  # flushed
    with db_engine.connect() as connection:
        count = connection.execute(
            text(
                "SELECT count(*), count(DISTINCT request_id) FROM audit_log "
                "WHERE tenant_id = :t AND action = :a"
            ),
            {"t": tenant_a.id, "a": "create_conversation"},
        ).one()
    assert tuple(count) == (1000, 1000)
    verified = served.client.get(
        f"/{tenant_a.slug}/admin/audit/verify", headers=tenant_a.admin_headers
    ).json()
    assert verified["ok"] is True and verified["rows"] > 1000


def test_verify_finds_an_edited_row_and_deleted_rows(served, tenant_a, db_engine):
    for index in range(6):
        assert_status(
            served.client.post(
                f"/{tenant_a.slug}/conversations", json={"title": str(index)}, headers=tenant_a.admin_headers
            ),
            201,
        )
    rows = served.audit_rows(tenant_a)
    verify = f"/{tenant_a.slug}/admin/audit/verify"
    assert served.client.get(verify, headers=tenant_a.admin_headers).json()["ok"] is True
    assert served.client.get(verify, headers=tenant_a.admin_headers).json()["rows"] == len(rows)

    def sql(statement: str, **values: object) -> None:
        with db_engine.begin() as connection:
            connection.execute(text(statement), {"c": tenant_a.id, **values})

    with db_engine.connect() as connection:
        original = connection.execute(
            text("SELECT status FROM audit_log WHERE chain = :c AND seq = 3"), {"c": tenant_a.id}
        ).scalar()
    sql("UPDATE audit_log SET status = 599 WHERE chain = :c AND seq = 3")
    edited = served.client.get(verify, headers=tenant_a.admin_headers).json()
    assert edited["ok"] is False and edited["first_bad_seq"] == 3 and "changed" in edited["reason"]
    sql("UPDATE audit_log SET status = :s WHERE chain = :c AND seq = 3", s=original)
    assert served.client.get(verify, headers=tenant_a.admin_headers).json()["ok"] is True

    sql("DELETE FROM audit_log WHERE chain = :c AND seq = 4")
    deleted = served.client.get(verify, headers=tenant_a.admin_headers).json()
    assert deleted["ok"] is False and deleted["first_bad_seq"] == 4 and "missing" in deleted["reason"]
    sql("DELETE FROM audit_log WHERE chain = :c AND seq > 4")
    truncated = served.client.get(verify, headers=tenant_a.admin_headers).json()  # the whole tail is gone
    assert truncated["ok"] is False and truncated["first_bad_seq"] == 4 and "missing" in truncated["reason"]


def test_platform_admins_verify_the_platform_chain(platform, tenant_a, db_engine):
    # Creating tenants and failed logins without a tenant land in the `platform` chain.
    assert_error(
        platform.client.post(
            "/auth/token", data={"username": "nobody@example.com", "password": "wrong pass 1"}
        ),
        401,
    )
    platform.client.portal.call(platform.client.app.state.platform.audit.flush)  # type: ignore[union-attr]
    verify = "/admin/audit/verify"
    assert_error(platform.client.get(verify, headers=tenant_a.admin_headers), 403)
    verified = platform.client.get(verify, headers=platform.admin_headers).json()
    assert verified["ok"] is True and verified["rows"] >= 2

    with db_engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET status = 599 WHERE chain = 'platform' AND seq = 2"))
    edited = platform.client.get(verify, headers=platform.admin_headers).json()
    assert edited["ok"] is False and edited["first_bad_seq"] == 2 and "changed" in edited["reason"]
