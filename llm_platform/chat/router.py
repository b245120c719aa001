"""The tenant's simple chat API: `POST /{tenant}/chat`, a prompt plus history, JSON or SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from llm_platform.chat import service
from llm_platform.chat.call import SECURITY, TenantCallDep
from llm_platform.chat.json_response import json_response
from llm_platform.chat.openai_protocol import usage_of
from llm_platform.chat.schemas import ChatChunk, ChatDone, ChatIn, ChatOut, HistoryMessage
from llm_platform.chat.sse import SSE_HEADERS, STREAM_ERROR, closing, sse
from llm_platform.core.middleware import current_request_id
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
    state = call.state
    prepared = await service.prepare_simple(
        state.catalogue,
        state.session_factory,
        call.tenant,
        call.principal,
        body,
        state.settings.default_chat_model,
        current_request_id(),
        default_max_tokens=state.settings.default_max_tokens,
    )
    generate, memory = prepared.generate, prepared.memory
    started = await call.start(generate, memory)
    events = started.events
    if not body.stream:
        result = await service.complete(events)
        turn = [*prepared.history, prepared.prompt]
        return json_response(
            ChatOut(
                response=result.text,
                history=[HistoryMessage(role=m.role, content=m.content) for m in turn]  # type: ignore[arg-type]
                + [HistoryMessage(role="assistant", content=result.text)],
                model=generate.model,
                message_id=prepared.message_id,
                latency_ms=result.latency_ms,
                finish_reason=result.finish_reason,
                usage=usage_of(result.prompt_tokens, result.completion_tokens),
                conversation_id=str(memory.conversation_id) if memory else None,
            )
        )
    first = await anext(events)
    frames = _frames(first, events, prepared.message_id, generate.model)
    return StreamingResponse(closing(frames), media_type="text/event-stream", headers=SSE_HEADERS)


async def _frames(
    first: WorkerEvent,
    events: AsyncIterator[WorkerEvent],
    message_id: str,
    model: str,
) -> AsyncIterator[bytes]:
    try:
        async for event in service.resume(first, events):
            if not event.finished:
                yield sse(ChatChunk(text=event.text, message_id=message_id))
            elif event.finish_reason == "error":
                yield sse(STREAM_ERROR)
            else:
                usage = usage_of(event.prompt_tokens, event.completion_tokens)
                done = ChatDone(
                    message_id=message_id,
                    finish_reason=event.finish_reason or "stop",
                    usage=usage,
                    model=model,
                )
                yield sse(done)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
