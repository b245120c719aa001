"""Log records carry the request id, so a client's X-Request-ID finds every line of its request."""

from __future__ import annotations

import logging

from llm_platform.middleware import current_request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class QuietHeartbeats(logging.Filter):
    """Workers report every few seconds; their access-log lines would drown everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/internal/workers" not in record.getMessage()


def configure_logging(level: str) -> None:
    logging.getLogger("uvicorn.access").addFilter(QuietHeartbeats())
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    for name in ("llm_platform", "tenants", "models_registry"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
