"""One chat turn behind every front door: the same request through `/v1/chat/completions`, `/{tenant}/chat`
and the WebSocket gives the same answer, usage (in the answer, the ledger and the limits), audit row and
cache behaviour."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.conftest import QUESTION, TINY_MODEL, TenantCtx
from tests.responses import assert_status, bearer

MAX_TOKENS = 6
TOKENS_PER_MINUTE = 10_000
REQUESTS_PER_MINUTE = 10
PROMPT = QUESTION[0]["content"]


@dataclass(frozen=True)
class Answer:
    """What a client of any door is told: the text, why it ended, its usage, and whether the cache
    answered."""

    text: str
    finish_reason: str
    usage: dict[str, int]
    cache: str  # "hit" or "miss"


def _openai_response(platform, key: str):  # type: ignore[no-untyped-def]
    body = {"model": TINY_MODEL, "messages": QUESTION, "max_tokens": MAX_TOKENS, "temperature": 0}
    return assert_status(platform.client.post("/v1/chat/completions", json=body, headers=bearer(key)))


def _openai(platform, tenant: TenantCtx, key: str) -> Answer:  # type: ignore[no-untyped-def]
    response = _openai_response(platform, key)
    [choice] = response.json()["choices"]
    return Answer(
        choice["message"]["content"],
        choice["finish_reason"],
        response.json()["usage"],
        response.headers["x-cache"],
    )


def _tenant_chat(platform, tenant: TenantCtx, key: str) -> Answer:  # type: ignore[no-untyped-def]
    body = {"prompt": PROMPT, "model": TINY_MODEL, "max_tokens": MAX_TOKENS, "temperature": 0}
    response = assert_status(platform.client.post(f"/{tenant.slug}/chat", json=body, headers=bearer(key)))
    answer = response.json()
    return Answer(answer["response"], answer["finish_reason"], answer["usage"], response.headers["x-cache"])


def _websocket(platform, tenant: TenantCtx, key: str) -> Answer:  # type: ignore[no-untyped-def]
    body = {"type": "chat", "prompt": PROMPT, "model": TINY_MODEL, "max_tokens": MAX_TOKENS, "temperature": 0}
    with platform.client.websocket_connect(f"/{tenant.slug}/ws/chat?token={key}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json(body)
        texts = []
        while (frame := ws.receive_json())["type"] == "chunk":
            texts.append(frame["text"])
    assert frame["type"] == "done", frame
    return Answer(
        "".join(texts), frame["finish_reason"], frame["usage"], "hit" if frame["cached"] else "miss"
    )


# Each door by the action its audit rows name, and the path they record.
DOORS: dict[str, tuple[Callable[..., Answer], str]] = {
    "chat_completions": (_openai, "/v1/chat/completions"),
    "chat": (_tenant_chat, "/{slug}/chat"),
    "ws_chat": (_websocket, "/{slug}/ws/chat"),
}


def _ledger(platform, tenant: TenantCtx) -> dict[str, int]:  # type: ignore[no-untyped-def]
    report = platform.client.get(f"/{tenant.slug}/admin/usage", headers=tenant.admin_headers)
    return assert_status(report).json()["totals"]


def _audited(row: dict) -> tuple:
    """What a turn's audit row says of it, beyond who made it."""
    return (row["status"], row["model"], row["prompt_tokens"], row["completion_tokens"], row["cache_hit"])


@pytest.mark.parametrize("action", DOORS)
def test_a_repeat_is_a_cache_hit_billed_limited_and_audited_alike_on_every_door(served, tenant_a, action):
    ask, path = DOORS[action]
    served.set_limits(tenant_a, tokens_per_minute=TOKENS_PER_MINUTE, requests_per_minute=REQUESTS_PER_MINUTE)
    key = served.create_key(tenant_a)
    first, second = ask(served, tenant_a, key["key"]), ask(served, tenant_a, key["key"])
    assert (first.cache, second.cache) == ("miss", "hit")
    assert second == Answer(first.text, first.finish_reason, first.usage, "hit")  # the same answer
    assert first.finish_reason == "length" and first.usage["completion_tokens"] == MAX_TOKENS
    assert first.usage["total_tokens"] == first.usage["prompt_tokens"] + MAX_TOKENS

    # The ledger: two requests, the hit among them costing no tokens.
    ledger = _ledger(served, tenant_a)
    assert (ledger["requests"], ledger["cached_hits"]) == (2, 1)
    assert ledger["total_tokens"] == first.usage["total_tokens"]

    # The audit log: a row per turn, by the key, in the tenant's log, with the model and its tokens.
    rows = served.audit_rows(tenant_a, action=action)  # newest first
    assert [_audited(row) for row in rows] == [
        (200, TINY_MODEL, 0, 0, True),  # a hit spends no tokens
        (200, TINY_MODEL, first.usage["prompt_tokens"], first.usage["completion_tokens"], False),
    ]
    for row in rows:
        assert (row["tenant_id"], row["actor_kind"], row["actor_id"]) == (tenant_a.id, "api_key", key["id"])
        assert row["key_prefix"] == key["prefix"] and row["resource"] == path.format(slug=tenant_a.slug)

    # The limits: both turns counted as requests, the tokens settled to what the first really used. A
    # third identical request (a hit, which reserves nothing) reads them back.
    probe = _openai_response(served, key["key"])
    assert probe.headers["x-cache"] == "hit"
    assert int(probe.headers["x-ratelimit-remaining-requests"]) == REQUESTS_PER_MINUTE - 3
    assert (
        int(probe.headers["x-ratelimit-remaining-tokens"]) == TOKENS_PER_MINUTE - first.usage["total_tokens"]
    )


def test_the_same_request_is_the_same_turn_through_every_door(served):
    seen: dict[str, tuple[Answer, tuple]] = {}
    for action, (ask, _) in DOORS.items():
        tenant = served.create_tenant()  # a cache, a ledger and a log of its own
        key = served.create_key(tenant)["key"]
        answer = ask(served, tenant, key)
        [row] = served.audit_rows(tenant, action=action)
        assert _ledger(served, tenant)["total_tokens"] == answer.usage["total_tokens"]
        seen[action] = (answer, _audited(row))
    first = seen["chat_completions"]
    assert first[0].cache == "miss" and first[0].text
    assert seen["chat"] == first and seen["ws_chat"] == first


def test_an_answer_cached_through_one_door_is_a_hit_through_the_others(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    answers = [ask(served, tenant_a, key) for ask, _ in DOORS.values()]
    assert [answer.cache for answer in answers] == ["miss", "hit", "hit"]
    assert {(a.text, a.finish_reason, a.usage["total_tokens"]) for a in answers} == {
        (answers[0].text, answers[0].finish_reason, answers[0].usage["total_tokens"])
    }
