"""`WS /{tenant}/ws/chat`: chat for browser clients, streaming text frames over one socket.

Protocol (JSON text frames):
- authenticate with `?token=...` in the URL, or send `{"type": "auth", "token": "..."}` first;
- send `{"type": "chat", "prompt": ..., "history"?, "system"?, "model"?, "max_tokens"?, "temperature"?,
  "top_p"?, "conversation_id"?}`; receive `{"type": "chunk", "text", "message_id"}` frames, then
  `{"type": "done", "message_id", "finish_reason", "usage", "model"}`;
- send `{"type": "cancel"}` to stop the answer being generated (one that arrives after the answer ended
  is ignored);
- a message sent once `done` (or a turn's error frame) went out is the next one: it is answered when the
  turn has finished closing; one sent while an answer still streams gets a `busy` error frame;
- a bad message (not JSON, a binary frame, an invalid field) gets `{"type": "error", "error": {...}}` (the
  shared error shape) and the socket stays open.
Close codes: 4401 no or bad credentials, 4403 not allowed (suspended tenant, key without the inference
scope), 4404 unknown tenant (or another tenant's), 4408 no credentials within 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from datetime import UTC, datetime

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from llm_platform.audit.context import AuditContext
from llm_platform.auth.principal import Principal
from llm_platform.auth.service import authenticate
from llm_platform.chat import service
from llm_platform.chat.openai_protocol import usage_of
from llm_platform.chat.schemas import ChatIn
from llm_platform.core.errors import Forbidden, PlatformError, Unauthorized, error_body
from llm_platform.core.ids import new_hex_id
from llm_platform.core.unicode_text import has_lone_surrogate
from llm_platform.state import PlatformState
from tenants import service as tenant_service
from tenants.models import ApiKeyScope
from tenants.ref import TenantRef

router = APIRouter()
logger = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 10.0
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_AUTH_TIMEOUT = 4401, 4403, 4404, 4408


class _Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@router.websocket("/{tenant}/ws/chat")
async def ws_chat(websocket: WebSocket, tenant: str) -> None:
    state: PlatformState = websocket.app.state.platform
    await websocket.accept()
    try:
        principal, tenant_row = await _authenticate(websocket, state, tenant)
        await websocket.send_json({"type": "ready", "tenant": tenant_row.slug, "principal": principal.kind})
        pending: _Frame | None = None  # received while the last turn was closing: the next message
        while True:
            frame = pending if pending is not None else await _receive_frame(websocket)
            pending = None
            message = await _parse(websocket, frame)
            if message is None or message.get("type") == "cancel":  # a cancel that crossed `done`
                continue
            if message.get("type") != "chat":
                await _send_error(
                    websocket, f"Unknown message type {message.get('type')!r}", "invalid_request", "type"
                )
                continue
            pending = await _one_turn(websocket, state, tenant_row, principal, message)
    except _Closed as closed:
        await websocket.close(code=closed.code, reason=closed.reason)
    except WebSocketDisconnect:
        pass


async def _authenticate(
    websocket: WebSocket, state: PlatformState, tenant_slug: str
) -> tuple[Principal, TenantRef]:
    credential = websocket.query_params.get("token")
    if not credential:
        try:
            frame = await asyncio.wait_for(_receive_frame(websocket), AUTH_TIMEOUT_S)
            first = json.loads(frame) if isinstance(frame, str) else None
        except TimeoutError as exc:
            raise _Closed(CLOSE_AUTH_TIMEOUT, "no credentials") from exc
        except json.JSONDecodeError as exc:
            raise _Closed(CLOSE_UNAUTHORIZED, "send {type: auth, token} first") from exc
        credential = first.get("token") if isinstance(first, dict) and first.get("type") == "auth" else None
        if not isinstance(credential, str) or not credential:
            raise _Closed(CLOSE_UNAUTHORIZED, "send {type: auth, token} first")
        if has_lone_surrogate(credential):  # no credential is; and it could not even be hashed
            raise _Closed(CLOSE_UNAUTHORIZED, "Invalid or missing credentials")
    try:
        principal = await authenticate(state.session_factory, state.settings, credential, state.key_cache)
    except Unauthorized as exc:
        raise _Closed(CLOSE_UNAUTHORIZED, exc.message) from exc
    except Forbidden as exc:
        raise _Closed(CLOSE_FORBIDDEN, exc.message) from exc
    if not principal.is_platform_admin and principal.tenant_slug != tenant_slug:
        raise _Closed(CLOSE_NOT_FOUND, "not found")
    async with state.session_factory() as session:
        tenant = await tenant_service.find_tenant(session, tenant_slug)
        if tenant is None:
            raise _Closed(CLOSE_NOT_FOUND, "not found")
        if principal.kind == "api_key" and ApiKeyScope.inference.value not in principal.scopes:
            raise _Closed(CLOSE_FORBIDDEN, "this API key lacks the inference scope")
    return principal, TenantRef.of(tenant)


_Frame = str | bytes  # a text frame, or a binary one


async def _receive_frame(websocket: WebSocket) -> _Frame:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


async def _parse(websocket: WebSocket, frame: _Frame) -> dict | None:
    """The client's JSON object; a malformed frame is answered and skipped (None)."""
    if isinstance(frame, bytes):
        # Answered in band like any bad frame, rather than closed with 1003: one stray frame from a
        # client library should not cost the conversation on the socket.
        await _send_error(websocket, "Frames must be text frames holding JSON objects", "invalid_request")
        return None
    try:
        message = json.loads(frame)
    except json.JSONDecodeError:
        message = None
    if not isinstance(message, dict):
        await _send_error(websocket, "Frames must be JSON objects", "invalid_request")
        return None
    return message


async def _one_turn(
    websocket: WebSocket, state: PlatformState, tenant: TenantRef, principal: Principal, message: dict
) -> _Frame | None:
    """Streams one answer while listening for `cancel` (or the client leaving). Returns the frame that
    arrived once the answer had ended but before the turn finished closing: the client's next message."""
    try:
        body = ChatIn.model_validate({k: v for k, v in message.items() if k != "type"} | {"stream": True})
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"])
        await _send_error(websocket, f"Invalid value for '{param}': {first['msg']}", "invalid_request", param)
        return None
    # Set just before the turn's last frame (done or error) goes out: from then on the client may speak.
    answered = asyncio.Event()
    turn = asyncio.create_task(_stream_answer(websocket, state, tenant, principal, body, answered))
    next_frame: _Frame | None = None
    while not turn.done():
        listener = asyncio.create_task(_receive_frame(websocket))
        done, _ = await asyncio.wait({turn, listener}, return_when=asyncio.FIRST_COMPLETED)
        if listener in done:
            try:
                frame = listener.result()
            except WebSocketDisconnect:
                turn.cancel()
                raise
            if answered.is_set():
                next_frame = frame
                break
            if isinstance(frame, bytes):
                await _parse(websocket, frame)  # answered as a bad frame; the answer goes on
            elif _is_cancel(frame):
                turn.cancel()
            else:
                await _send_error(websocket, "One answer at a time: wait for `done` or send a cancel", "busy")
        else:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await listener
    with contextlib.suppress(asyncio.CancelledError):
        await turn
    if turn.cancelled():
        await websocket.send_json({"type": "done", "finish_reason": "cancelled"})
    return next_frame


def _is_cancel(frame: str) -> bool:
    try:
        message = json.loads(frame)
    except json.JSONDecodeError:
        return False
    return isinstance(message, dict) and message.get("type") == "cancel"


async def _stream_answer(
    websocket: WebSocket,
    state: PlatformState,
    tenant: TenantRef,
    principal: Principal,
    body: ChatIn,
    answered: asyncio.Event,
) -> None:
    """One turn, audited like an HTTP request (status 200, or the status its error would have had)."""
    audit = AuditContext(tenant_id=tenant.id)
    audit.identify(principal)
    at, started, status = datetime.now(UTC), time.perf_counter(), 200
    request_id = new_hex_id()
    try:
        await _turn(websocket, state, tenant, principal, body, audit, request_id, answered)
    except PlatformError as exc:
        status = exc.status_code
        answered.set()
        await _send_error(websocket, exc.message, exc.code, exc.param, exc.error_type)
    except asyncio.CancelledError:
        status = 499  # the client cancelled the answer
        raise
    finally:
        client = websocket.client
        state.audit.record(
            audit.entry(
                at=at,
                action="ws_chat",
                resource=websocket.url.path,
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000),
                client_address=client.host if client else None,
                user_agent=websocket.headers.get("user-agent"),
                request_id=request_id,
                request_sha256=hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
                response_sha256=None,
            )
        )


async def _turn(
    websocket: WebSocket,
    state: PlatformState,
    tenant: TenantRef,
    principal: Principal,
    body: ChatIn,
    audit: AuditContext,
    request_id: str,
    answered: asyncio.Event,
) -> None:
    prepared = await service.prepare_simple(
        state.catalogue,
        state.session_factory,
        tenant,
        principal,
        body,
        state.settings.default_chat_model,
        request_id,
        default_max_tokens=state.settings.default_max_tokens,
    )
    started = await service.start(state, tenant, principal, prepared.generate, prepared.memory, audit=audit)
    events = started.events
    try:
        async for event in events:
            if not event.finished:
                await websocket.send_json(
                    {"type": "chunk", "text": event.text, "message_id": prepared.message_id}
                )
            elif event.finish_reason == "error":
                raise service.model_failed()
            else:
                answered.set()
                await websocket.send_json(
                    {
                        "type": "done",
                        "message_id": prepared.message_id,
                        "finish_reason": event.finish_reason,
                        "usage": usage_of(event.prompt_tokens, event.completion_tokens).model_dump(),
                        "model": prepared.generate.model,
                        "cached": started.cache_hit,
                    }
                )
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def _send_error(
    websocket: WebSocket, message: str, code: str, param: str | None = None, error_type: str | None = None
) -> None:
    body = error_body(message, error_type or "invalid_request_error", code, param)
    await websocket.send_json({"type": "error", **body})
