"""Domain errors and the one JSON error shape (OpenAI's): {"error": {message, type, code, param}}.

Services raise these; `llm_platform.core.error_handlers` turns them into responses. Nothing here knows HTTP
beyond the status code each error maps to.
"""

from __future__ import annotations

from llm_platform.core.unicode_text import printable


class PlatformError(Exception):
    """Base of every error a client may see. `message` must be safe to show to the client."""

    status_code = 500
    error_type = "server_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}


class BadRequest(PlatformError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "bad_request"


class Unauthorized(PlatformError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_credentials"

    def __init__(self, message: str = "Invalid or missing credentials", **kwargs: object) -> None:
        headers = {"WWW-Authenticate": 'Bearer realm="llm-platform"'}
        super().__init__(message, headers=headers, **kwargs)  # type: ignore[arg-type]


class Forbidden(PlatformError):
    status_code = 403
    error_type = "permission_error"
    code = "forbidden"


class NotFound(PlatformError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class Conflict(PlatformError):
    status_code = 409
    error_type = "invalid_request_error"
    code = "conflict"


class Unprocessable(PlatformError):
    """Each value valid alone, but not together, or not with what is stored: the status a schema's own
    check would answer, so the same mistake answers alike however it is caught."""

    status_code = 422
    error_type = "invalid_request_error"
    code = "invalid_request"


class PayloadTooLarge(PlatformError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(PlatformError):
    status_code = 415
    error_type = "invalid_request_error"
    code = "unsupported_media_type"


class RateLimited(PlatformError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int, **kwargs: object) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after_s))}, **kwargs)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s


class ServiceUnavailable(PlatformError):
    status_code = 503
    error_type = "server_error"
    code = "service_unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database did not answer (llm_platform.core.db.DATABASE_UNREACHABLE, mapped by the one handler)."""

    def __init__(self) -> None:
        super().__init__(
            "The service is temporarily unavailable; please retry shortly", headers={"Retry-After": "2"}
        )


def error_body(message: str, error_type: str, code: str | None, param: str | None = None) -> dict:
    """The single place that builds the error shape. Message and param may echo client input, which
    must not make the error itself unwritable (see unicode_text)."""
    param = printable(param) if param is not None else None
    return {"error": {"message": printable(message), "type": error_type, "code": code, "param": param}}
