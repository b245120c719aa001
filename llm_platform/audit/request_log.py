"""One log line per request (LLMP_LOG_FORMAT=json, in place of uvicorn's access log): request id,
route, status, latency and, from the request's audit context, tenant, actor, model and tokens. Never a
credential: the actor is named by kind and id (and an API key by its prefix, which is no secret), the
route by its template, not the raw path."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_platform.audit.context import AuditContext

logger = logging.getLogger("llm_platform.requests")


def log_request(
    scope: Scope, context: AuditContext | None, *, route: str, status: int, latency_ms: int
) -> None:
    fields: dict[str, object] = {
        "method": scope.get("method", "WS"),
        "route": route,
        "status": status,
        "latency_ms": latency_ms,
    }
    if context is not None:
        if not context.audited:  # the platform's own traffic (worker heartbeats), not a client's
            return
        fields.update(
            tenant_id=context.tenant_id,
            actor=f"{context.actor_kind}:{context.actor_id}" if context.actor_kind else None,
            key_prefix=context.key_prefix,
            model=context.model,
            prompt_tokens=context.prompt_tokens,
            completion_tokens=context.completion_tokens,
            cache_hit=context.cache_hit,
        )
    logger.info("%s %s %d", fields["method"], route, status, extra={"fields": fields})


class RequestLogMiddleware:
    """Pure ASGI, inside the request id's middleware (its lines carry the id), around everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            log_request(
                scope,
                scope.get("state", {}).get("audit"),
                route=getattr(route, "path", None) or "unmatched",
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000),
            )
