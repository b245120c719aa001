"""Maps every error to the one JSON shape. No stack trace, SQL or internal detail reaches a client."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from llm_platform.core.db import DATABASE_UNREACHABLE, describe_error
from llm_platform.core.errors import DatabaseUnavailable, PlatformError, error_body
from llm_platform.core.middleware import REQUEST_ID_HEADER, current_request_id

logger = logging.getLogger(__name__)

_STATUS_TYPES = {
    401: ("authentication_error", "invalid_credentials"),
    403: ("permission_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


# Framework messages that do not tell the client what to do about them.
_CLEARER_MESSAGES = {
    "Not Found": "Not found",
    "There was an error parsing the body": "Request body could not be parsed: send UTF-8 encoded JSON",
}


def _request_id(request: Request) -> str:
    # The 500 handler runs outside the request-id middleware, whose context has ended by then.
    return getattr(request.state, "request_id", None) or current_request_id()


def _respond(
    request: Request, status: int, body: dict, headers: dict[str, str] | None = None
) -> JSONResponse:
    headers = dict(headers or {})
    headers.setdefault(REQUEST_ID_HEADER, _request_id(request))
    return JSONResponse(body, status_code=status, headers=headers)


async def handle_platform_error(request: Request, exc: PlatformError) -> JSONResponse:
    return _respond(
        request, exc.status_code, error_body(exc.message, exc.error_type, exc.code, exc.param), exc.headers
    )


def _field(error: Mapping[str, Any]) -> str | None:
    # ("body", "messages", 0, "role") -> "messages.0.role": the field as the client wrote it.
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "header")]
    return ".".join(location) or None


async def handle_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    param = _field(first)
    reason = first.get("msg", "Invalid request")
    kind = first.get("type")
    if kind == "json_invalid":
        message, param = "Request body is not valid JSON", None
    elif kind == "extra_forbidden":
        message = f"Unknown field '{param}'"
    elif kind == "missing" and param:
        # Name every missing field at once, not one per retry.
        missing = [_field(error) for error in errors if error.get("type") == "missing"]
        message = "Missing field" + ("s " if len(missing) > 1 else " ") + ", ".join(f"'{m}'" for m in missing)
        if request.method == "PUT":
            message += " (PUT replaces every field; PATCH changes only the fields sent)"
        errors = [error for error in errors if error.get("type") != "missing"] + [first]
    elif param and "input" in first and first["input"] is None:
        message = f"'{param}' may not be null"
    else:
        message = f"Invalid value for '{param}': {reason}" if param else reason
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    status = validation_error_status(request.url.path)
    return _respond(request, status, error_body(message, "invalid_request_error", "invalid_request", param))


def validation_error_status(path: str) -> int:
    """OpenAI (and its client's BadRequestError) answer bad parameters with 400; elsewhere FastAPI's 422.
    `path` is a request's or a route's (`/{tenant}/v1/...`)."""
    return 400 if "/v1/" in path else 422


async def handle_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    error_type, code = _STATUS_TYPES.get(exc.status_code, ("invalid_request_error", "invalid_request"))
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    message = _CLEARER_MESSAGES.get(message, message)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return _respond(request, exc.status_code, error_body(message, error_type, code), headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette's 405 names only the first route that
    matched the path, but a path is often several routes (GET and POST /admin/tenants are two)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):  # included routers' routes too
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def handle_database_unreachable(request: Request, exc: Exception) -> JSONResponse:
    # An outage, not a bug: one line without the error's text (SQL, parameters, the server's address).
    logger.warning("database unreachable on %s %s: %s", request.method, request.url.path, describe_error(exc))
    return await handle_platform_error(request, DatabaseUnavailable())


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = _request_id(request)
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    message = f"Internal server error; quote request id {request_id} when reporting it"
    # Starlette re-raises the error once this response is sent, and uvicorn then closes the connection:
    # without this header a keep-alive client would send its next request into a closing socket.
    headers = {"Connection": "close"}
    return _respond(request, 500, error_body(message, "server_error", "internal_error"), headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PlatformError, handle_platform_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, handle_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)  # type: ignore[arg-type]
    for error in DATABASE_UNREACHABLE:
        app.add_exception_handler(error, handle_database_unreachable)
    app.add_exception_handler(Exception, handle_unexpected)
