"""OpenAI-compatible endpoints: /v1/chat/completions and /v1/models (also under /{tenant}/v1/...)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from llm_platform.chat import service
from llm_platform.chat.openai_protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ModelCard,
    ModelList,
    Usage,
)
from llm_platform.chat.sse import DONE, closing, sse
from llm_platform.dependencies import (
    CredentialTenantDep,
    DispatcherDep,
    InferenceTenantDep,
    SessionDep,
)
from llm_platform.errors import BadRequest
from llm_platform.middleware import current_request_id
from models_registry import service as catalogue
from models_registry.dispatch import Dispatcher
from models_registry.worker.protocol import ChatMessage, GenerateRequest, WorkerEvent
from tenants.models import Tenant

router = APIRouter(tags=["openai"])


@router.get("/v1/models")
async def list_models(tenant: CredentialTenantDep, session: SessionDep) -> ModelList:
    return await _model_list(session, tenant)


@router.get("/{tenant}/v1/models")
async def list_tenant_models(tenant: InferenceTenantDep, session: SessionDep) -> ModelList:
    return await _model_list(session, tenant)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    tenant: CredentialTenantDep,
    session: SessionDep,
    dispatcher: DispatcherDep,
) -> ChatCompletion | StreamingResponse:
    return await _chat_completions(body, request, tenant, session, dispatcher)


@router.post("/{tenant}/v1/chat/completions", response_model=None)
async def tenant_chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    tenant: InferenceTenantDep,
    session: SessionDep,
    dispatcher: DispatcherDep,
) -> ChatCompletion | StreamingResponse:
    return await _chat_completions(body, request, tenant, session, dispatcher)


async def _model_list(session, tenant: Tenant) -> ModelList:  # type: ignore[no-untyped-def]
    models = await catalogue.models_for_tenant(session, tenant.id)
    return ModelList(data=[ModelCard(id=m.name, created=int(m.created_at.timestamp())) for m in models])


async def _chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    tenant: Tenant,
    session,
    dispatcher: Dispatcher,  # type: ignore[no-untyped-def]
) -> ChatCompletion | StreamingResponse:
    refused = body.unsupported_fields()
    if refused:
        raise BadRequest(
            f"Unsupported parameter: '{refused[0]}' is not supported by this server",
            code="unsupported_parameter",
            param=refused[0],
        )
    turn = service.ChatTurn(
        model=body.model,
        messages=[
            ChatMessage(role="system" if m.role == "developer" else m.role, content=m.text())
            for m in body.messages
        ],
        max_tokens=body.requested_max_tokens(),
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        seed=body.seed,
        stop=body.stop_strings(),
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        repetition_penalty=body.repetition_penalty,
        ignore_eos=body.ignore_eos,
    )
    completion_id = service.new_message_id()
    generate = await service.prepare(session, tenant, turn, current_request_id() + ":" + completion_id)
    await session.close()  # nothing else to read: do not hold a connection for the whole generation
    if not body.stream:
        result = await service.complete(dispatcher, generate)
        return ChatCompletion(
            id=completion_id,
            model=generate.model,
            choices=[
                Choice(message=AssistantMessage(content=result.text), finish_reason=result.finish_reason)
            ],
            usage=Usage(
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                total_tokens=result.prompt_tokens + result.completion_tokens,
            ),
        )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = service.stream(dispatcher, generate)
    first = await anext(events)  # errors before the first token still get a proper status code
    frames = _openai_frames(first, events, completion_id, generate, include_usage)
    return StreamingResponse(
        closing(frames),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _openai_frames(
    first: WorkerEvent,
    events: AsyncIterator[WorkerEvent],
    completion_id: str,
    generate: GenerateRequest,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: Delta, finish_reason: str | None = None, usage: Usage | None = None) -> bytes:
        choices = [] if usage else [ChunkChoice(delta=delta, finish_reason=finish_reason)]  # type: ignore[arg-type]
        return sse(
            ChatCompletionChunk(
                id=completion_id, created=created, model=generate.model, choices=choices, usage=usage
            )
        )

    try:
        yield chunk(Delta(role="assistant", content=""))
        event = first
        while True:
            if event.text:
                yield chunk(Delta(content=event.text))
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
        yield chunk(Delta(), finish_reason=event.finish_reason or "stop")
        if include_usage:
            yield chunk(
                Delta(),
                usage=Usage(
                    prompt_tokens=event.prompt_tokens,
                    completion_tokens=event.completion_tokens,
                    total_tokens=event.prompt_tokens + event.completion_tokens,
                ),
            )
        yield DONE
    finally:
        await events.aclose()  # type: ignore[attr-defined]
