"""The application factory: wires settings, state, middleware, error handlers, chat's model endpoints and
the admin and account routes (llm_platform.routes)."""

from __future__ import annotations

import gc
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette_exporter import PrometheusMiddleware

from llm_platform import health
from llm_platform.audit.middleware import AuditMiddleware
from llm_platform.audit.request_log import RequestLogMiddleware
from llm_platform.chat.conversations_router import router as conversations_router
from llm_platform.chat.openai_router import router as openai_router
from llm_platform.chat.openai_router import unsupported_router as openai_unsupported_router
from llm_platform.chat.router import router as chat_router
from llm_platform.chat.ws_router import router as ws_router
from llm_platform.console.mount import install_console
from llm_platform.core.error_handlers import install_error_handlers
from llm_platform.core.logging_setup import configure_logging
from llm_platform.core.middleware import (
    REQUEST_ID_HEADER,
    BodySizeLimitMiddleware,
    CORSMiddleware,
    RequestIdMiddleware,
)
from llm_platform.core.openapi_errors import complete_error_responses
from llm_platform.core.settings import Settings
from llm_platform.docs import install_docs
from llm_platform.embeddings.router import router as embeddings_router
from llm_platform.ratelimit.headers import RATE_LIMIT_HEADER_NAMES
from llm_platform.routes.audit import router as audit_router
from llm_platform.routes.auth import router as auth_router
from llm_platform.routes.knowledge import UPLOAD_PATH
from llm_platform.routes.knowledge import router as knowledge_router
from llm_platform.routes.metrics import router as metrics_router
from llm_platform.routes.models import admin_router as models_admin_router
from llm_platform.routes.models import tenant_router as models_tenant_router
from llm_platform.routes.models import workers_router
from llm_platform.routes.tenants import platform_router, tenant_admin_router
from llm_platform.routes.usage import router as usage_router
from llm_platform.routes.workers import router as worker_registry_router
from llm_platform.state import PlatformState


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = PlatformState.build(settings)
        app.state.platform = state
        await state.start()
        # What exists now (modules, routes, settings, pools) lives as long as the process: out of the
        # collector's sight, a full collection scans only what requests created, not every start-up
        # object while no request is served (bench/RESULTS.md, "Costs behind choices in the code").
        gc.freeze()
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(
        title="llm-platform",
        version="0.1.0",
        summary="A tenant-aware, metered API over local Hugging Face models.",
        lifespan=lifespan,
        openapi_url=None,  # for now: the docs' routes are added last
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: install_docs serves them
        redoc_url=None,
        # Off unless asked for: /metrics covers HTTP metrics, and when on FastAPI looks up the global
        # providers on every request, even when none is configured.
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    install_error_handlers(app)
    app.add_middleware(AuditMiddleware)  # innermost: it sees the route, the principal and the answer
    app.add_middleware(
        PrometheusMiddleware, app_name="llm_platform", prefix="llmp", skip_paths=["/metrics", "/healthz"]
    )
    # Added last = outermost: the request id exists before anything else runs, even a 413.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        # A knowledge-base upload: the file's own limit (checked exactly by the route) and room for the
        # multipart envelope and its few fields.
        larger_limits=(("POST", re.compile(UPLOAD_PATH), settings.knowledge_max_upload_bytes + 256 * 1024),),
    )
    if settings.cors_allow_origins:  # outside the size limit: a browser may read a 413 too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            # Any header: the origin is the boundary, and clients add their own (the openai JS
            # client's x-stainless-*); a cross-origin page still needs a credential to get anywhere.
            allow_headers=["*"],
            allow_credentials=settings.cors_allow_credentials,
            expose_headers=[REQUEST_ID_HEADER, *RATE_LIMIT_HEADER_NAMES, "retry-after", "x-cache"],
        )
    if settings.log_format == "json":  # its line per request replaces uvicorn's access log
        app.add_middleware(RequestLogMiddleware)
    app.add_middleware(RequestIdMiddleware)

    # Routes are tried in order, by the router and again by the metrics middleware's path grouping
    # (which rebuilds FastAPI's route contexts as it goes, route by route). So the model endpoints,
    # nearly all the traffic, come first, the chat completions first of all, and the docs last
    # (openapi_url is set after them, see below). No model path overlaps a later route's (/v1/models
    # would fit /{tenant}/models, but `v1` is a reserved slug: no tenant can have it).
    app.include_router(openai_router)
    app.include_router(chat_router)
    app.include_router(embeddings_router)
    app.include_router(health.router)
    app.include_router(metrics_router)
    app.include_router(auth_router)
    app.include_router(platform_router)
    app.include_router(tenant_admin_router)
    app.include_router(usage_router)
    app.include_router(audit_router)
    app.include_router(models_admin_router)
    app.include_router(workers_router)
    app.include_router(models_tenant_router)
    app.include_router(conversations_router)
    app.include_router(knowledge_router)
    app.include_router(ws_router)
    app.include_router(openai_unsupported_router)
    if not settings.redis_url:  # with Redis, workers register there themselves
        app.include_router(worker_registry_router)
    install_console(app)
    app.openapi_url = "/openapi.json"
    generate_openapi = app.openapi

    def openapi() -> dict:  # FastAPI's document, with the errors each operation answers
        if app.openapi_schema is None:
            app.openapi_schema = complete_error_responses(generate_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.setup()  # adds the OpenAPI document, after every other route
    install_docs(app)  # and the docs pages
    return app
