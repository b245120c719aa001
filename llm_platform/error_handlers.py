"""Maps every error to the one JSON shape. No stack trace, SQL or internal detail reaches a client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm_platform.db import DATABASE_UNREACHABLE, describe_error
from llm_platform.errors import DatabaseUnavailable, PlatformError, error_body
from llm_platform.middleware import REQUEST_ID_HEADER, current_request_id

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


async def handle_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    # ("body", "messages", 0, "role") -> "messages.0.role": the field as the client wrote it.
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    param = ".".join(location) or None
    reason = first.get("msg", "Invalid request")
    if first.get("type") == "json_invalid":
        message, param = "Request body is not valid JSON", None
    else:
        message = f"Invalid value for '{param}': {reason}" if param else reason
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    # OpenAI (and its client's BadRequestError) answer bad parameters with 400; elsewhere FastAPI's 422.
    status = 400 if "/v1/" in request.url.path else 422
    return _respond(request, status, error_body(message, "invalid_request_error", "invalid_request", param))


async def handle_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    error_type, code = _STATUS_TYPES.get(exc.status_code, ("invalid_request_error", "invalid_request"))
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    message = _CLEARER_MESSAGES.get(message, message)
    return _respond(
        request, exc.status_code, error_body(message, error_type, code), getattr(exc, "headers", None)
    )


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
