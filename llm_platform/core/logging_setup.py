"""Log records carry the request id, so a client's X-Request-ID finds every line of its request; and no
log line carries a credential. Lines are text, or JSON objects (LLMP_LOG_FORMAT=json) for a log
pipeline: then a record's `fields` (a dict passed as `extra={"fields": ...}`) become keys of its own."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from llm_platform.core.middleware import current_request_id

REDACTED = "[REDACTED]"
# A credential in a URL's query (`WS /{tenant}/ws/chat?token=...` puts one in uvicorn's request line),
# an API key (`sk-<prefix>_<secret>`: the prefix is no secret and finds the key, so it stays) and a JWT.
_CREDENTIALS = (
    (
        re.compile(r"([?&](?:token|access_token|refresh_token|api_key|key)=)[^&#\s\"']+", re.I),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"\b(sk-[A-Za-z0-9]+_)[A-Za-z0-9_\-]+"), rf"\1{REDACTED}"),
    (re.compile(r"\bsk-(?![A-Za-z0-9]+_)[A-Za-z0-9\-]{8,}"), f"sk-{REDACTED}"),  # not our format
    (re.compile(r"\beyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), REDACTED),
)


def redact(text: str) -> str:
    if "=" not in text and "sk-" not in text and "eyJ" not in text:
        return text  # nearly every line: no regex run for it
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


class RedactCredentials(logging.Filter):
    """Rewrites a record's message, its arguments (uvicorn's access formatter reads them one by one) and
    its traceback text before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class QuietHeartbeats(logging.Filter):
    """Workers report every few seconds; their access-log lines would drown everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/internal/workers" not in record.getMessage()


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, request id, message, the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line["exception"] = record.exc_text
        return redact(json.dumps(line, ensure_ascii=False, default=str))


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


def uvicorn_log_config(log_format: str) -> dict[str, Any] | None:
    """uvicorn's own loggers as JSON lines too (None: uvicorn's default text config)."""
    if log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": handler},
        "loggers": {
            name: {"handlers": ["default"], "level": "INFO", "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def _add_once(logger: logging.Logger, log_filter: logging.Filter) -> None:
    if not any(type(existing) is type(log_filter) for existing in logger.filters):
        logger.addFilter(log_filter)


def configure_logging(level: str, log_format: str = "text") -> None:
    # On uvicorn's loggers themselves, where its records are made: whatever handlers its log config
    # gives them (`llmp serve`, or uvicorn's own command line), every line has been redacted.
    _add_once(logging.getLogger("uvicorn.access"), QuietHeartbeats())
    for name in ("uvicorn.access", "uvicorn.error"):
        _add_once(logging.getLogger(name), RedactCredentials())
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactCredentials())  # on the handler: records of every child logger pass it
    handler.setFormatter(formatter_for(log_format))
    for name in ("llm_platform", "tenants", "models_registry"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
