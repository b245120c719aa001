"""The tenant's simple chat front door: `POST /{tenant}/chat`, a prompt plus history (or a stored
conversation), answered as JSON or SSE. Translates its wire shapes (schemas.py) to the one chat turn
(turn.py) and back; the WebSocket (ws_router.py) speaks the same shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from llm_platform.auth.model_call import SECURITY
from llm_platform.chat.dependencies import TenantCallDep
from llm_platform.chat.json_response import json_response
from llm_platform.chat.openai_protocol import usage_of
from llm_platform.chat.schemas import ChatChunk, ChatDone, ChatIn, ChatOut, HistoryMessage, turn_request
from llm_platform.chat.sse import SSE_HEADERS, STREAM_ERROR, closing, sse
from llm_platform.chat.stream import complete, resume
from llm_platform.chat.turn import Turn
from llm_platform.core.openapi_errors import errors, streamed
from models_registry.worker.protocol import WorkerEvent

router = APIRouter(tags=["chat"])


@router.post(
    "/{tenant}/chat",
    response_model=None,
    responses={**streamed(ChatOut), **errors(429, 503)},
    openapi_extra=SECURITY,
)
async def chat(body: ChatIn, call: TenantCallDep) -> Response:
    asked = turn_request(body)
    turn = await call.start(asked)
    if not body.stream:
        result = await complete(turn.events)
        said = [*turn.history, *asked.new_messages]
        return json_response(
            ChatOut(
                response=result.text,
                history=[HistoryMessage(role=m.role, content=m.content) for m in said]  # type: ignore[arg-type]
                + [HistoryMessage(role="assistant", content=result.text)],
                model=turn.model,
                message_id=turn.message_id,
                latency_ms=result.latency_ms,
                finish_reason=result.finish_reason,
                usage=usage_of(result.prompt_tokens, result.completion_tokens),
                conversation_id=str(turn.conversation_id) if turn.conversation_id else None,
                **turn.cited(result.references_used),
            )
        )
    first = await anext(turn.events)
    return StreamingResponse(
        closing(_frames(first, turn)), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _frames(first: WorkerEvent, turn: Turn) -> AsyncIterator[bytes]:
    events = turn.events
    try:
        async for event in resume(first, events):
            if not event.finished:
                yield sse(ChatChunk(text=event.text, message_id=turn.message_id))
            elif event.finish_reason == "error":
                yield sse(STREAM_ERROR)
            else:
                usage = usage_of(event.prompt_tokens, event.completion_tokens)
                done = ChatDone(
                    message_id=turn.message_id,
                    finish_reason=event.finish_reason or "stop",
                    usage=usage,
                    model=turn.model,
                    **turn.cited(event.references_used),
                )
                yield sse(done)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
