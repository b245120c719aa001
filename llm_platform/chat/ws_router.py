"""`WS /{tenant}/ws/chat`: chat for browser clients, streaming text frames over one socket.

Protocol (JSON text frames):
- authenticate with `?token=...` in the URL, or send `{"type": "auth", "token": "..."}` first;
- send `{"type": "chat", "prompt": ..., "history"?, "system"?, "model"?, "max_tokens"?, "temperature"?,
  "top_p"?, "conversation_id"?}`; receive `{"type": "chunk", "text", "message_id"}` frames, then
  `{"type": "done", "message_id", "finish_reason", "usage", "model", "citations"?,
  "knowledge_base_degraded"?}` (`knowledge_base` asks for a grounded answer, as on `POST /{tenant}/chat`;
  `citations` then names its passages, and `knowledge_base_degraded` says when words alone found them);
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
import dataclasses
import hashlib
import json
import time
from datetime import UTC, datetime

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from llm_platform.audit.context import audit_context, record_action
from llm_platform.audit.request_log import log_request
from llm_platform.audit.writer import AuditWriter
from llm_platform.auth.dependencies import authenticate_credential, check_inference, inference_tenant
from llm_platform.auth.model_call import Caller
from llm_platform.auth.principal import Principal
from llm_platform.chat.dependencies import AuditWriterDep, ChatTurnsDep
from llm_platform.chat.grounding import CitedAnswer
from llm_platform.chat.openai_protocol import usage_of
from llm_platform.chat.schemas import ChatIn, turn_request
from llm_platform.chat.settle import model_failed
from llm_platform.chat.turn import ChatTurns
from llm_platform.core.errors import Forbidden, NotFound, PlatformError, Unauthorized, error_body
from llm_platform.core.ids import new_hex_id
from llm_platform.core.unicode_text import has_lone_surrogate
from tenants.ref import TenantRef

router = APIRouter()
WS_CHAT_PATH = "/{tenant}/ws/chat"

AUTH_TIMEOUT_S = 10.0
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_AUTH_TIMEOUT = 4401, 4403, 4404, 4408
# The refusals of HTTP's authentication, as close codes (the close reason is the HTTP error's message).
_CLOSE_CODES = {
    Unauthorized.status_code: CLOSE_UNAUTHORIZED,
    Forbidden.status_code: CLOSE_FORBIDDEN,
    NotFound.status_code: CLOSE_NOT_FOUND,
}


class _Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@router.websocket(WS_CHAT_PATH)
async def ws_chat(websocket: WebSocket, tenant: str, turns: ChatTurnsDep, audit: AuditWriterDep) -> None:
    await websocket.accept()
    try:
        principal, tenant_ref = await _authenticate(websocket, tenant)
        await websocket.send_json({"type": "ready", "tenant": tenant_ref.slug, "principal": principal.kind})
        json_logs = websocket.app.state.platform.settings.log_format == "json"
        socket = _Socket(websocket, turns, audit, tenant_ref, principal, json_logs)
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
            pending = await _one_turn(socket, message)
    except _Closed as closed:
        await websocket.close(code=closed.code, reason=closed.reason)
    except WebSocketDisconnect:
        pass


async def _authenticate(websocket: WebSocket, tenant_slug: str) -> tuple[Principal, TenantRef]:
    """As HTTP authenticates a model call (the same functions): the credential, then the inference
    scope, then the tenant; each refusal closes the socket with the code of its HTTP status."""
    credential = websocket.query_params.get("token") or await _credential_frame(websocket)
    try:
        principal = check_inference(await authenticate_credential(websocket, credential))
        tenant = await inference_tenant(websocket, principal, tenant_slug)
    except (Unauthorized, Forbidden, NotFound) as exc:
        raise _Closed(_CLOSE_CODES[exc.status_code], exc.message) from exc
    return principal, tenant


async def _credential_frame(websocket: WebSocket) -> str:
    """The token of a first `{"type": "auth", "token": ...}` frame."""
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
    return credential


@dataclasses.dataclass(frozen=True)
class _Socket:
    """An authenticated socket: whose it is, and where its turns go and are audited."""

    websocket: WebSocket
    turns: ChatTurns
    audit: AuditWriter
    tenant: TenantRef
    principal: Principal
    log_turns: bool  # a JSON log line per turn (LLMP_LOG_FORMAT=json), as for each HTTP request


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


async def _one_turn(socket: _Socket, message: dict) -> _Frame | None:
    """Streams one answer while listening for `cancel` (or the client leaving). Returns the frame that
    arrived once the answer had ended but before the turn finished closing: the client's next message."""
    websocket = socket.websocket
    try:
        body = ChatIn.model_validate({k: v for k, v in message.items() if k != "type"} | {"stream": True})
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"])
        await _send_error(websocket, f"Invalid value for '{param}': {first['msg']}", "invalid_request", param)
        return None
    # Set just before the turn's last frame (done or error) goes out: from then on the client may speak.
    answered = asyncio.Event()
    answering = asyncio.create_task(_audited_turn(socket, body, answered))
    next_frame: _Frame | None = None
    while not answering.done():
        listener = asyncio.create_task(_receive_frame(websocket))
        done, _ = await asyncio.wait({answering, listener}, return_when=asyncio.FIRST_COMPLETED)
        if listener in done:
            try:
                frame = listener.result()
            except WebSocketDisconnect:
                answering.cancel()
                raise
            if answered.is_set():
                next_frame = frame
                break
            if isinstance(frame, bytes):
                await _parse(websocket, frame)  # answered as a bad frame; the answer goes on
            elif _is_cancel(frame):
                answering.cancel()
            else:
                await _send_error(websocket, "One answer at a time: wait for `done` or send a cancel", "busy")
        else:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await listener
    with contextlib.suppress(asyncio.CancelledError):
        await answering
    if answering.cancelled():
        await websocket.send_json({"type": "done", "finish_reason": "cancelled"})
    return next_frame


def _is_cancel(frame: str) -> bool:
    try:
        message = json.loads(frame)
    except json.JSONDecodeError:
        return False
    return isinstance(message, dict) and message.get("type") == "cancel"


async def _audited_turn(socket: _Socket, body: ChatIn, answered: asyncio.Event) -> None:
    """One turn, audited as HTTP audits a request (the same row, written the same way): status 200, or
    the status its error would have had; 499 when the client cancelled it."""
    websocket = socket.websocket
    # A row per turn, by the socket's caller: the actor and tenant authentication named for the socket.
    audit = dataclasses.replace(audit_context(websocket.scope))
    caller = Caller(socket.tenant, socket.principal, audit, new_hex_id(), endpoint=WS_CHAT_PATH)
    at, started, status = datetime.now(UTC), time.perf_counter(), 200
    try:
        await _turn(socket, caller, body, answered)
    except PlatformError as exc:
        status = exc.status_code
        answered.set()
        await _send_error(websocket, exc.message, exc.code, exc.param, exc.error_type)
    except asyncio.CancelledError:
        status = 499  # the client cancelled the answer
        raise
    finally:
        if socket.log_turns:
            log_request(
                websocket.scope,
                audit,
                route=WS_CHAT_PATH,
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000),
            )
        record_action(
            socket.audit,
            websocket.scope,
            audit,
            action="ws_chat",
            status=status,
            at=at,
            started=started,
            request_id=caller.request_id,
            request_sha256=hashlib.sha256(body.model_dump_json().encode()).hexdigest(),
            response_sha256=None,
        )


async def _turn(socket: _Socket, caller: Caller, body: ChatIn, answered: asyncio.Event) -> None:
    websocket = socket.websocket
    turn = await socket.turns.start(caller, turn_request(body))
    events = turn.events
    try:
        async for event in events:
            if not event.finished:
                await websocket.send_json(
                    {"type": "chunk", "text": event.text, "message_id": turn.message_id}
                )
            elif event.finish_reason == "error":
                raise model_failed()
            else:
                answered.set()
                done = {
                    "type": "done",
                    "message_id": turn.message_id,
                    "finish_reason": event.finish_reason,
                    "usage": usage_of(event.prompt_tokens, event.completion_tokens).model_dump(),
                    "model": turn.model,
                    "cached": turn.cache_hit,
                }
                # Citations when the knowledge base was asked, as the other doors' answers carry them.
                done |= CitedAnswer(**turn.cited(event.references_used)).model_dump()
                await websocket.send_json(done)
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def _send_error(
    websocket: WebSocket, message: str, code: str, param: str | None = None, error_type: str | None = None
) -> None:
    body = error_body(message, error_type or "invalid_request_error", code, param)
    await websocket.send_json({"type": "error", **body})
