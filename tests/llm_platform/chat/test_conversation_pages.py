"""The conversations list pages with a cursor: newest activity first, each conversation once, the
caller's own only."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.responses import assert_error, assert_status, bearer


def _create(client, slug, headers, count):  # type: ignore[no-untyped-def]
    return [
        assert_status(
            client.post(f"/{slug}/conversations", json={"title": f"c{n}"}, headers=headers), 201
        ).json()["id"]
        for n in range(count)
    ]


def _every_page(client, slug, headers, limit):  # type: ignore[no-untyped-def]
    """Every conversation the caller sees, following the cursor, and how many pages that took."""
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = assert_status(client.get(f"/{slug}/conversations", params=params, headers=headers)).json()
        assert set(page) == {"data", "next_cursor"}
        assert len(page["data"]) <= limit
        seen += page["data"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, pages


def test_paging_returns_each_conversation_once_newest_first(platform, tenant_a, db_engine):
    client, headers, slug = platform.client, tenant_a.admin_headers, tenant_a.slug
    ids = _create(client, slug, headers, 7)
    # Pairs of conversations active at the same instant: the id breaks the tie, so no page boundary
    # can repeat or skip one of them.
    start = datetime(2030, 1, 1, tzinfo=UTC)
    at = {conversation: start + timedelta(seconds=n // 2) for n, conversation in enumerate(ids)}
    with db_engine.begin() as connection:
        for conversation, moment in at.items():
            connection.execute(
                text("UPDATE conversations SET updated_at = :at WHERE id = :id"),
                {"at": moment, "id": conversation},
            )
    expected = sorted(ids, key=lambda c: (at[c], uuid.UUID(c)), reverse=True)

    for limit in (1, 2, 3, 7):
        seen, pages = _every_page(client, slug, headers, limit)
        assert [c["id"] for c in seen] == expected, limit
        assert pages == -(-len(ids) // limit), limit
    seen, pages = _every_page(client, slug, headers, 100)
    assert [datetime.fromisoformat(c["updated_at"]) for c in seen] == [at[c] for c in expected]
    assert pages == 1


def test_a_page_holds_fifty_unless_asked_and_at_most_a_hundred(platform, tenant_a):
    client, headers, slug = platform.client, tenant_a.admin_headers, tenant_a.slug
    ids = _create(client, slug, headers, 51)
    first = assert_status(client.get(f"/{slug}/conversations", headers=headers)).json()
    assert [c["id"] for c in first["data"]] == list(reversed(ids))[:50]
    rest = client.get(f"/{slug}/conversations", params={"cursor": first["next_cursor"]}, headers=headers)
    assert [c["id"] for c in assert_status(rest).json()["data"]] == [ids[0]]
    assert rest.json()["next_cursor"] is None
    for limit in (0, 101):
        refused = client.get(f"/{slug}/conversations", params={"limit": limit}, headers=headers)
        assert assert_error(refused, 422)["param"] == "limit"


def test_a_bad_cursor_is_a_400_in_the_error_shape(platform, tenant_a):
    client, headers, slug = platform.client, tenant_a.admin_headers, tenant_a.slug
    _create(client, slug, headers, 1)

    def cursor(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    bad = [
        "garbage",
        "é",
        cursor("not a time|" + str(uuid.uuid4())),
        cursor("2030-01-01T00:00:00+00:00|not-a-uuid"),
        cursor("2030-01-01T00:00:00+00:00|42"),  # an audit log's cursor: its ids are numbers
        cursor("2030-01-01T00:00:00|" + str(uuid.uuid4())),  # no time zone: never one of ours
        cursor("0001-01-01T00:00:00+14:00|" + str(uuid.uuid4())),  # before year 1 in UTC
        cursor("2030-01-01T00:00:00+00:00"),
    ]
    for value in bad:
        response = client.get(f"/{slug}/conversations", params={"cursor": value}, headers=headers)
        error = assert_error(response, 400, "invalid_cursor")
        assert error["param"] == "cursor", value


def test_only_the_callers_own_conversations_appear(platform, tenant_a, tenant_b):
    client = platform.client
    platform.create_user(tenant_a.slug, "member@alpha.example.com", headers=tenant_a.admin_headers)
    member = bearer(platform.login("member@alpha.example.com", tenant=tenant_a.slug)["access_token"])
    key = bearer(platform.create_key(tenant_a)["key"])
    owners = {
        "admin": (tenant_a.slug, tenant_a.admin_headers, 5),
        "member": (tenant_a.slug, member, 3),
        "key": (tenant_a.slug, key, 2),
        "other tenant": (tenant_b.slug, tenant_b.admin_headers, 4),
    }
    made = {who: _create(client, slug, headers, count) for who, (slug, headers, count) in owners.items()}
    for who, (slug, headers, _) in owners.items():
        seen, _ = _every_page(client, slug, headers, 2)
        assert [c["id"] for c in seen] == list(reversed(made[who])), who

    # A cursor from someone else's list only positions the caller in their own: past the admin's newest
    # conversation (made before any of the member's) there is nothing of the member's, and none of the
    # admin's.
    admin_page = client.get(
        f"/{tenant_a.slug}/conversations", params={"limit": 1}, headers=tenant_a.admin_headers
    )
    cursor = admin_page.json()["next_cursor"]
    theirs = client.get(f"/{tenant_a.slug}/conversations", params={"cursor": cursor}, headers=member).json()
    assert theirs == {"data": [], "next_cursor": None}
    # Another tenant's credentials on this tenant's list: refused as if the tenant did not exist.
    assert_error(client.get(f"/{tenant_a.slug}/conversations", headers=tenant_b.admin_headers), 404)
