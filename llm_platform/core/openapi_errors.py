"""The error responses of the OpenAPI document, as data: the one error shape as a schema, what each
status means, the few a route declares itself (`responses=errors(409)`), and the rules that add those
every operation of a kind can answer.

FastAPI documents a 200 and its own 422 shape (`{"detail": [...]}`, which we never send). The rules
below follow from the operation itself, so no route repeats them and none can forget them:
- a request body: 400 (not UTF-8 JSON) and 413 (over LLMP_MAX_REQUEST_BODY_BYTES);
- parameters or a body (FastAPI's 422): our error shape, and 400 under /v1, where validation errors
  answer 400 as OpenAI's do;
- a credential (a security requirement): 401, 403 (a suspended tenant's credentials, a missing role or
  scope) and 503 (the database that checks it is unreachable);
- a path parameter: 404 (missing, or another tenant's: they answer the same).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from llm_platform.core.error_handlers import validation_error_status

REF_PREFIX = "#/components/schemas/"


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None
    param: str | None


class ErrorResponse(BaseModel):
    """Every error a client sees: `{"error": {"message", "type", "code", "param"}}` (OpenAI's)."""

    error: ErrorDetail


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
# What each status means here, and the headers that come with it.
STATUSES: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The request cannot be served as sent; under /v1 also a body that fails validation", {}),
    401: (
        "Missing or invalid credentials",
        {"WWW-Authenticate": {"description": 'Bearer realm="llm-platform"', "schema": {"type": "string"}}},
    ),
    403: ("The credential may not do this: its role, its API key's scopes, or a suspended tenant", {}),
    404: ("Not found (another tenant's resources answer the same)", {}),
    409: ("It already exists", {}),
    413: ("The request body is over LLMP_MAX_REQUEST_BODY_BYTES", {}),
    415: ("The content type or file type is not one this operation accepts", {}),
    422: ("A parameter or the body does not match the schema; `param` names it", {}),
    429: ("A rate limit or quota is spent", _RETRY_AFTER),
    503: ("Unavailable for now: the model's workers, the database or the rate-limit store", _RETRY_AFTER),
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the errors a route answers that the rules do not add (a 409, a 429...)."""
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, headers = STATUSES[status]
        declared[status] = {"model": ErrorResponse, "description": description}
        if headers:
            declared[status]["headers"] = headers
    return declared


def streamed(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The 200 of a route that answers JSON, or server-sent events when the body asks to stream."""
    events = {
        "schema": {
            "type": "string",
            "description": f"`data: <JSON>` events, each a chunk of the answer ({model.__name__} when whole)",
        }
    }
    return {200: {"model": model, "content": {"text/event-stream": events}}}


def complete_error_responses(document: dict[str, Any]) -> dict[str, Any]:
    """Applies the rules above to a document FastAPI generated; returns it."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template=REF_PREFIX + "{model}")
    schemas.update(error_schema.pop("$defs"))
    schemas["ErrorResponse"] = error_schema
    for path, item in document["paths"].items():
        for operation in item.values():
            _complete(path, operation)
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, never sent
        schemas.pop(name, None)
    return document


def _complete(path: str, operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    statuses: set[int] = set()
    if "requestBody" in operation:
        statuses |= {400, 413}
    if responses.pop("422", None) is not None:  # FastAPI's, added where there is something to validate
        statuses.add(validation_error_status(path))
    if operation.get("security"):
        statuses |= {401, 403, 503}
    if any(parameter["in"] == "path" for parameter in operation.get("parameters", ())):
        statuses.add(404)
    for status in sorted(statuses):
        responses.setdefault(str(status), {})
    operation["responses"] = responses = dict(sorted(responses.items()))
    for status, response in responses.items():
        if status[0] in "45" and int(status) in STATUSES:
            description, headers = STATUSES[int(status)]
            response.setdefault("description", description)
            if headers:
                response.setdefault("headers", headers)
            response.setdefault(
                "content", {"application/json": {"schema": {"$ref": REF_PREFIX + "ErrorResponse"}}}
            )
