"""Server-Sent Events framing, and a stream wrapper that always closes what it wraps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from pydantic import BaseModel

from llm_platform.chat.settle import model_failed
from llm_platform.core.errors import error_body

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# A stream that already sent 200 can only report a failure in band, in the error shape.
_FAILED = model_failed()
STREAM_ERROR = error_body(_FAILED.message, _FAILED.error_type, _FAILED.code)


def sse(payload: BaseModel | dict) -> bytes:
    body = payload.model_dump_json() if isinstance(payload, BaseModel) else json.dumps(payload)
    return b"data: " + body.encode() + b"\n\n"


async def closing(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Starlette cancels a stream whose client disconnected; closing the generator at once releases the
    worker connection, which cancels the sequence and frees its slot at the next engine step."""
    try:
        async for frame in frames:
            yield frame
    finally:
        await frames.aclose()  # type: ignore[attr-defined]
