"""WebSocket chat: authentication, streamed frames, cancel, and clear close codes."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from starlette.websockets import WebSocketDisconnect

from llm_platform.chat.turn import ChatTurns
from tests.conftest import TINY_MODEL
from tests.responses import assert_error, assert_status, bearer
from tests.workers import wait_registered


@pytest.fixture
def key(served, tenant_a) -> str:  # type: ignore[no-untyped-def]
    # The socket's answers must come from the engine, not from the cache the HTTP requests fill.
    served.update_settings(tenant_a, cache_enabled=False)
    return served.create_key(tenant_a)["key"]


def _collect(ws) -> tuple[list[dict], dict]:  # type: ignore[no-untyped-def]
    chunks = []
    while True:
        frame = ws.receive_json()
        if frame["type"] == "done":
            return chunks, frame
        assert frame["type"] == "chunk", frame
        chunks.append(frame)


def test_chat_over_a_websocket_matches_the_http_answer(platform, tenant_a, key):
    body = {
        "prompt": "What is the capital of France?",
        "model": TINY_MODEL,
        "max_tokens": 12,
        "temperature": 0,
    }
    http = assert_status(
        platform.client.post(f"/{tenant_a.slug}/chat", json=body, headers={"Authorization": f"Bearer {key}"})
    )
    with platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={key}") as ws:
        assert ws.receive_json() == {"type": "ready", "tenant": tenant_a.slug, "principal": "api_key"}
        for _ in range(2):  # several turns on one socket
            ws.send_json({"type": "chat", **body})
            chunks, done = _collect(ws)
            assert "".join(c["text"] for c in chunks) == http.json()["response"]
            assert done["usage"] == http.json()["usage"]
            assert done["finish_reason"] == http.json()["finish_reason"]


def test_token_in_the_first_message_and_bad_frames(platform, tenant_a, key):
    with platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat") as ws:
        ws.send_json({"type": "auth", "token": key})
        assert ws.receive_json()["type"] == "ready"
        ws.send_text("not json")
        assert ws.receive_json()["error"]["code"] == "invalid_request"
        ws.send_json({"type": "chat", "prompt": "", "model": TINY_MODEL})
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["param"] == "prompt"
        ws.send_json({"type": "chat", "prompt": "hi", "model": "no-such-model"})
        assert ws.receive_json()["error"]["code"] == "model_not_found"


def test_cancel_stops_the_answer_and_frees_the_slot(platform, tenant_a, key, long_worker, redis_url):
    wait_registered(redis_url, "tiny-long")
    with platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={key}") as ws:
        ws.receive_json()
        ws.send_json(
            {
                "type": "chat",
                "prompt": "Go on forever",
                "model": "tiny-long",
                "max_tokens": 12_000,
                "ignore_eos": True,
            }
        )
        assert ws.receive_json()["type"] == "chunk"
        assert long_worker.health()["running"] == 1
        ws.send_json({"type": "cancel"})
        frame = ws.receive_json()
        while frame["type"] == "chunk":
            frame = ws.receive_json()
        assert frame == {"type": "done", "finish_reason": "cancelled"}
    deadline = time.monotonic() + 5
    while long_worker.health()["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert long_worker.health()["running"] == 0


@pytest.mark.parametrize(
    ("path", "token", "code"),
    [
        ("/{own}/ws/chat", "sk-bogus_key", 4401),
        ("/{other}/ws/chat", "{key}", 4404),
        ("/no-such-tenant/ws/chat", "{key}", 4404),
    ],
)
def test_close_codes_say_what_is_wrong(platform, tenant_a, tenant_b, key, path, token, code):
    url = path.format(own=tenant_a.slug, other=tenant_b.slug) + "?token=" + token.format(key=key)
    with pytest.raises(WebSocketDisconnect) as closed, platform.client.websocket_connect(url) as ws:
        ws.receive_json()
    assert closed.value.code == code


def test_suspended_tenant_and_missing_scope_close_with_4403(platform, tenant_a, key):
    admin_only = platform.create_key(tenant_a, scopes=["admin"])["key"]
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={admin_only}") as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 4403
    assert_status(
        platform.client.patch(
            f"/admin/tenants/{tenant_a.slug}", json={"status": "suspended"}, headers=platform.admin_headers
        )
    )
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={key}") as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 4403


def test_rate_limits_hold_over_a_websocket_too(platform, tenant_a, key):
    platform.set_limits(tenant_a, requests_per_minute=1)
    body = {"type": "chat", "prompt": "Hi", "model": TINY_MODEL, "max_tokens": 2}
    with platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={key}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json(body)
        _collect(ws)
        ws.send_json(body)
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["code"] == "rate_limit_exceeded"
        assert error["error"]["type"] == "rate_limit_error"
        ws.send_json({"type": "chat", "prompt": "", "model": TINY_MODEL})  # the socket is still open
        assert ws.receive_json()["error"]["param"] == "prompt"


def test_the_scope_is_checked_before_the_tenant_as_over_http(platform, tenant_a, tenant_b):
    # A key that may not chat learns nothing of other tenants: refused for its scope on either door.
    admin_only = platform.create_key(tenant_a, scopes=["admin"])["key"]
    over_http = platform.client.post(
        f"/{tenant_b.slug}/chat", json={"prompt": "Hi"}, headers=bearer(admin_only)
    )
    assert_error(over_http, 403, "missing_scope")
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        platform.client.websocket_connect(f"/{tenant_b.slug}/ws/chat?token={admin_only}") as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 4403


def test_a_platform_admin_chats_for_any_tenant_that_exists(platform, tenant_a):
    token = platform.admin_headers["Authorization"].removeprefix("Bearer ")
    with platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={token}") as ws:
        assert ws.receive_json() == {"type": "ready", "tenant": tenant_a.slug, "principal": "user"}
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        platform.client.websocket_connect(f"/no-such-tenant/ws/chat?token={token}") as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 4404


@pytest.fixture
def slow_to_close(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A turn keeps closing (its stream, its audit row) a while after `done` went out, as under load."""
    start = ChatTurns.start

    async def slowly_closed(events):  # type: ignore[no-untyped-def]
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()
            await asyncio.sleep(0.05)

    async def start_slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = await start(*args, **kwargs)
        return dataclasses.replace(started, events=slowly_closed(started.events))

    monkeypatch.setattr(ChatTurns, "start", start_slow)


def test_a_message_sent_the_instant_done_arrives_is_answered(platform, tenant_a, key, slow_to_close):
    # The next message must wait for the turn to close, not bounce as `busy` and be lost.
    body = {"type": "chat", "prompt": "Hi", "model": TINY_MODEL, "max_tokens": 2}
    with platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={key}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json(body)
        for _ in range(15):
            _collect(ws)  # raises on an error frame (`busy`)
            ws.send_json(body)
        _collect(ws)
        ws.send_json({"type": "cancel"})  # one that crossed the answer's end is not an error
        ws.send_json({"type": "chat", "prompt": "", "model": TINY_MODEL})
        assert ws.receive_json()["error"]["param"] == "prompt"


def test_a_binary_frame_gets_an_error_frame_and_the_socket_stays_open(  # type: ignore[no-untyped-def]
    platform, tenant_a, key, long_worker, redis_url
):
    wait_registered(redis_url, "tiny-long")
    with platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={key}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(b'{"type": "chat"}')
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["code"] == "invalid_request"
        assert "text frames" in error["error"]["message"]
        long_answer = {"prompt": "Go on", "model": "tiny-long", "max_tokens": 12_000, "ignore_eos": True}
        ws.send_json({"type": "chat", **long_answer})
        assert ws.receive_json()["type"] == "chunk"
        ws.send_bytes(b"\x00")  # while the answer streams: answered too, and the answer goes on
        frame = ws.receive_json()
        while frame["type"] == "chunk":
            frame = ws.receive_json()
        assert frame["type"] == "error" and frame["error"]["code"] == "invalid_request"
        assert ws.receive_json()["type"] == "chunk"
        ws.send_json({"type": "cancel"})
        while frame["type"] != "done":
            frame = ws.receive_json()
        assert frame == {"type": "done", "finish_reason": "cancelled"}


def test_a_bad_frame_sent_the_instant_done_arrives_is_answered_too(platform, tenant_a, key, slow_to_close):
    body = {"type": "chat", "prompt": "Hi", "model": TINY_MODEL, "max_tokens": 2}
    with platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={key}") as ws:
        assert ws.receive_json()["type"] == "ready"
        for bad_frame in (b"\x00", ""):
            ws.send_json(body)
            _collect(ws)
            ws.send_bytes(bad_frame) if isinstance(bad_frame, bytes) else ws.send_text(bad_frame)
            assert ws.receive_json()["error"]["code"] == "invalid_request"


def test_a_binary_first_frame_is_not_credentials(platform, tenant_a, key):
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat") as ws,
    ):
        ws.send_bytes(key.encode())
        ws.receive_json()
    assert closed.value.code == 4401
