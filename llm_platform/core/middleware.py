"""Pure ASGI middleware: request ids, the request body size limit, and CORS.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched and the per-request
overhead stays a few microseconds.
"""

from __future__ import annotations

import contextlib
import json
import re
from contextvars import ContextVar

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_platform.core.errors import PayloadTooLarge, error_body
from llm_platform.core.ids import new_hex_id

REQUEST_ID_HEADER = "x-request-id"
# A client-supplied id is echoed only when it is short and printable: it lands in logs and audit rows.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


def current_request_id() -> str:
    return request_id_var.get()


def response_headers(scope: Scope) -> dict[str, str]:
    """Headers a handler wants on its response whatever it turns out to be (a success, an error raised
    later, a stream): the request id middleware adds them when the response starts."""
    return scope.setdefault("state", {}).setdefault("response_headers", {})


class RequestIdMiddleware:
    """Takes X-Request-ID from the request (or makes one), exposes it to logs, and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        supplied = header(scope, REQUEST_ID_HEADER.encode())
        request_id = supplied if supplied and _SAFE_REQUEST_ID.match(supplied) else new_hex_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault(REQUEST_ID_HEADER, request_id)
                for name, value in scope["state"].get("response_headers", {}).items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """Answers 413 for bodies over the limit: at once from Content-Length, or while a chunked body streams.

    `larger_limits` names the few operations (method, path pattern) that take bigger bodies, file
    uploads, and their own limit; the route itself checks the file against its exact limit."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        larger_limits: tuple[tuple[str, re.Pattern[str], int], ...] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger_limits = larger_limits

    def _limit_of(self, scope: Scope) -> int:
        for method, path, limit in self.larger_limits:
            if scope["method"] == method and path.fullmatch(scope["path"]):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_of(scope)
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return

        received_bytes = 0
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received_bytes, rejected
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > limit:
                    rejected = True
                    raise PayloadTooLarge(self._message(limit))
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body is over the limit, whatever the app makes of the failed read (FastAPI turns
            # it into a 400) is dropped: the client gets our 413 instead.
            if not rejected:
                await send(message)

        with contextlib.suppress(PayloadTooLarge):  # when the app let the failed read escape
            await self.app(scope, limited_receive, guarded_send)
        if rejected:
            await self._reject(send, limit)

    @staticmethod
    def _message(limit: int) -> str:
        return f"Request body exceeds the limit of {limit} bytes"

    async def _reject(self, send: Send, limit: int) -> None:
        body = json.dumps(
            error_body(self._message(limit), PayloadTooLarge.error_type, PayloadTooLarge.code)
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class CORSMiddleware(StarletteCORSMiddleware):
    """Starlette's, except that a refused preflight (an origin, method or header not allowed) answers in
    the one error shape, with no CORS headers: the browser then refuses the request itself."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        message = f"{bytes(response.body).decode()} (allowed origins are set by LLMP_CORS_ALLOW_ORIGINS)"
        return JSONResponse(error_body(message, "invalid_request_error", "cors_not_allowed"), status_code=400)


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (name in lower case), as sent."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def asks_for_fresh_answer(connection: HTTPConnection) -> bool:
    """`Cache-Control: no-cache` (or no-store) asks for a freshly computed answer, not a cached one."""
    directives = connection.headers.get("cache-control", "").lower()
    return "no-cache" in directives or "no-store" in directives
