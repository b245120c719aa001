"""Conversations keep history server-side, for their owner only."""

from __future__ import annotations

from tests.conftest import TINY_MODEL
from tests.responses import assert_error, assert_status, bearer, sse_chunks


def _new(client, tenant, headers):  # type: ignore[no-untyped-def]
    created = client.post(f"/{tenant}/conversations", json={}, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_turns_are_stored_and_sent_back_to_the_model(tenant_a_caller, tenant_a):
    client, headers = tenant_a_caller
    conversation = _new(client, tenant_a.slug, headers)
    first = client.post(
        f"/{tenant_a.slug}/chat",
        headers=headers,
        json={
            "prompt": "My name is Ada.",
            "model": TINY_MODEL,
            "max_tokens": 5,
            "conversation_id": conversation,
        },
    )
    assert first.status_code == 200, first.text
    assert first.json()["conversation_id"] == conversation
    second = client.post(
        "/v1/chat/completions",
        headers=headers,
        json={
            "model": TINY_MODEL,
            "max_tokens": 5,
            "conversation_id": conversation,
            "messages": [{"role": "user", "content": "What is my name?"}],
        },
    )
    assert second.status_code == 200, second.text
    # The stored history went to the model: more prompt tokens than the new message alone.
    alone = assert_status(
        client.post(
            "/v1/chat/completions",
            headers=headers,
            json={
                "model": TINY_MODEL,
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "What is my name?"}],
            },
        )
    )
    assert second.json()["usage"]["prompt_tokens"] > alone.json()["usage"]["prompt_tokens"]

    stored = client.get(f"/{tenant_a.slug}/conversations/{conversation}", headers=headers).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]
    assert stored["messages"][0]["content"] == "My name is Ada."
    assert stored["messages"][1]["content"] == first.json()["response"]
    assert stored["messages"][3]["content"] == second.json()["choices"][0]["message"]["content"]
    assert stored["messages"][3]["model"] == TINY_MODEL
    assert stored["title"] == "My name is Ada."
    listing = client.get(f"/{tenant_a.slug}/conversations", headers=headers).json()
    assert [c["id"] for c in listing["data"]] == [conversation]
    assert listing["next_cursor"] is None


def test_streamed_turns_are_stored_too(tenant_a_caller, tenant_a):
    client, headers = tenant_a_caller
    conversation = _new(client, tenant_a.slug, headers)
    streamed = client.post(
        f"/{tenant_a.slug}/chat",
        headers=headers,
        json={
            "prompt": "Hello",
            "model": TINY_MODEL,
            "max_tokens": 6,
            "stream": True,
            "conversation_id": conversation,
        },
    )
    assert streamed.status_code == 200, streamed.text
    events = sse_chunks(streamed)
    text = "".join(e.get("text", "") for e in events)
    stored = client.get(f"/{tenant_a.slug}/conversations/{conversation}", headers=headers).json()["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", "Hello"), ("assistant", text)]


def test_conversations_belong_to_their_owner(tenant_a_caller, platform, tenant_a, tenant_b):
    client, headers = tenant_a_caller
    conversation = _new(client, tenant_a.slug, headers)
    other_key = bearer(platform.create_key(tenant_a)["key"])
    other_tenant = bearer(platform.create_key(tenant_b)["key"])
    assert_error(
        client.get(f"/{tenant_a.slug}/conversations/{conversation}", headers=other_key),
        404,
        "conversation_not_found",
    )
    assert client.get(f"/{tenant_a.slug}/conversations", headers=other_key).json() == {
        "data": [],
        "next_cursor": None,
    }
    assert_error(client.get(f"/{tenant_a.slug}/conversations/{conversation}", headers=other_tenant), 404)
    assert_error(client.get(f"/{tenant_b.slug}/conversations/{conversation}", headers=other_tenant), 404)
    used_by_other = client.post(
        "/v1/chat/completions",
        headers=other_key,
        json={
            "model": TINY_MODEL,
            "conversation_id": conversation,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert_error(used_by_other, 404, "conversation_not_found")
    assert_error(client.get(f"/{tenant_a.slug}/conversations/not-a-uuid", headers=headers), 404)


def test_a_conversation_body_refuses_unknown_fields(platform, tenant_a):
    headers = bearer(platform.create_key(tenant_a)["key"])
    response = platform.client.post(f"/{tenant_a.slug}/conversations", json={"titel": "x"}, headers=headers)
    assert assert_error(response, 422)["param"] == "titel"
    assert platform.client.get(f"/{tenant_a.slug}/conversations", headers=headers).json()["data"] == []


def test_nul_characters_are_stored_as_replacements_and_refused_in_titles(tenant_a_caller, tenant_a):
    # A prompt (or a model's answer) may hold a NUL, which Postgres text cannot: the turn is kept with
    # U+FFFD in its place. A title the client names is refused instead.
    client, headers = tenant_a_caller
    titled = client.post(f"/{tenant_a.slug}/conversations", json={"title": "a\x00b"}, headers=headers)
    assert assert_error(titled, 422)["param"] == "title"
    conversation = _new(client, tenant_a.slug, headers)
    answered = client.post(
        f"/{tenant_a.slug}/chat",
        headers=headers,
        json={"prompt": "nul\x00here", "model": TINY_MODEL, "max_tokens": 2, "conversation_id": conversation},
    )
    assert answered.status_code == 200, answered.text
    stored = client.get(f"/{tenant_a.slug}/conversations/{conversation}", headers=headers).json()
    assert stored["messages"][0]["content"] == "nul\ufffdhere"
    assert stored["title"] == "nul\ufffdhere"
