"""Pure ASGI middleware that audits every API action: each request that changes something (anything
but GET, HEAD and OPTIONS) and matched a route, when its response has gone out (a stream included).

It hashes the request and response bodies as they pass (SHA-256, nothing buffered), except the bodies
of the endpoints that carry passwords: a hash of a low-entropy secret can be brute-forced.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_platform.audit.context import AuditContext, record_action

_READS = {"GET", "HEAD", "OPTIONS"}
_PASSWORD_BODIES = {"issue_token", "create_user", "reset_password"}  # route names


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READS:
            await self.app(scope, receive, send)
            return
        context = AuditContext()
        scope.setdefault("state", {})["audit"] = context
        at, started = datetime.now(UTC), time.perf_counter()
        request_hash, response_hash = hashlib.sha256(), hashlib.sha256()
        status = 500

        async def hashing_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_hash.update(message.get("body", b""))
            return message

        async def hashing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                response_hash.update(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, hashing_receive, hashing_send)
        finally:
            route = scope.get("route")
            writer = getattr(getattr(scope["app"].state, "platform", None), "audit", None)
            if route is not None and writer is not None:
                name = getattr(route, "name", None) or "unknown"
                record_action(
                    writer,
                    scope,
                    context,
                    action=name,
                    status=status,
                    at=at,
                    started=started,
                    request_id=scope["state"].get("request_id"),
                    request_sha256=None if name in _PASSWORD_BODIES else request_hash.hexdigest(),
                    response_sha256=response_hash.hexdigest(),
                )
