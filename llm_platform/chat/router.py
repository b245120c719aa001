"""The tenant's simple chat API: `POST /{tenant}/chat`, a prompt plus history, JSON or SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from llm_platform.chat import service
from llm_platform.chat.openai_protocol import Usage
from llm_platform.chat.schemas import ChatChunk, ChatDone, ChatIn, ChatOut, HistoryMessage
from llm_platform.chat.sse import closing, sse
from llm_platform.dependencies import DispatcherDep, InferenceTenantDep, SessionDep, SettingsDep
from llm_platform.middleware import current_request_id
from models_registry.worker.protocol import ChatMessage, WorkerEvent

router = APIRouter(tags=["chat"])


@router.post("/{tenant}/chat", response_model=None)
async def chat(
    body: ChatIn,
    tenant: InferenceTenantDep,
    session: SessionDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
) -> ChatOut | StreamingResponse:
    messages = [ChatMessage(role="system", content=body.system)] if body.system else []
    messages += [ChatMessage(role=m.role, content=m.content) for m in body.history]
    messages.append(ChatMessage(role="user", content=body.prompt))
    turn = service.ChatTurn(
        model=body.model or settings.default_chat_model,
        messages=messages,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
    )
    message_id = service.new_message_id()
    generate = await service.prepare(session, tenant, turn, current_request_id() + ":" + message_id)
    await session.close()
    if not body.stream:
        result = await service.complete(dispatcher, generate)
        history = [
            *body.history,
            HistoryMessage(role="user", content=body.prompt),
            HistoryMessage(role="assistant", content=result.text),
        ]
        return ChatOut(
            response=result.text,
            history=history,
            model=generate.model,
            message_id=message_id,
            latency_ms=result.latency_ms,
            finish_reason=result.finish_reason,
            usage=Usage(
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                total_tokens=result.prompt_tokens + result.completion_tokens,
            ),
        )
    events = service.stream(dispatcher, generate)
    first = await anext(events)
    return StreamingResponse(
        closing(_frames(first, events, message_id, generate.model)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def _frames(
    first: WorkerEvent, events: AsyncIterator[WorkerEvent], message_id: str, model: str
) -> AsyncIterator[bytes]:
    try:
        event = first
        while True:
            if event.text:
                yield sse(ChatChunk(text=event.text, message_id=message_id))
            if event.finished:
                break
            event = await anext(events)
        if event.finish_reason == "error":
            yield sse(
                {
                    "error": {
                        "message": event.error,
                        "type": "server_error",
                        "code": "model_error",
                        "param": None,
                    }
                }
            )
            return
        usage = Usage(
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            total_tokens=event.prompt_tokens + event.completion_tokens,
        )
        yield sse(
            ChatDone(
                message_id=message_id, finish_reason=event.finish_reason or "stop", usage=usage, model=model
            )
        )
    finally:
        await events.aclose()  # type: ignore[attr-defined]
