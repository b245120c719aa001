"""The OpenAI front door: /v1/chat/completions and /v1/models (also under /{tenant}/v1/...), and a clear
404 for OpenAI's endpoints we do not serve. Chat completions translate the OpenAI protocol
(openai_protocol.py) to the one chat turn (turn.py) and its answer back, whole or as SSE chunks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from llm_platform.auth.dependencies import CredentialTenantDep, InferenceTenantDep
from llm_platform.auth.model_call import SECURITY
from llm_platform.chat.dependencies import CredentialCallDep, ModelCall, TenantCallDep
from llm_platform.chat.grounding import knowledge_ask
from llm_platform.chat.json_response import json_response
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
    usage_of,
)
from llm_platform.chat.sampling import AskedSampling
from llm_platform.chat.sse import DONE, SSE_HEADERS, STREAM_ERROR, closing, sse
from llm_platform.chat.stream import complete, resume
from llm_platform.chat.turn import Turn, TurnRequest
from llm_platform.core.errors import BadRequest, NotFound
from llm_platform.core.openapi_errors import errors, streamed
from llm_platform.embeddings.router import router as embeddings_router
from models_registry.service import Catalogue, CatalogueDep, CatalogueEntry
from models_registry.worker.protocol import ChatMessage, WorkerEvent
from tenants.ref import TenantRef

router = APIRouter(tags=["openai"])


@router.post(
    "/v1/chat/completions",
    response_model=None,
    responses={**streamed(ChatCompletion), **errors(404, 429, 503)},
    openapi_extra=SECURITY,
)
async def chat_completions(body: ChatCompletionRequest, call: CredentialCallDep) -> Response:
    return await _chat_completions(body, call)


@router.post(
    "/{tenant}/v1/chat/completions",
    response_model=None,
    responses={**streamed(ChatCompletion), **errors(429, 503)},
    openapi_extra=SECURITY,
)
async def tenant_chat_completions(body: ChatCompletionRequest, call: TenantCallDep) -> Response:
    return await _chat_completions(body, call)


@router.get("/v1/models", responses=errors(400))  # 400: a platform admin names no tenant here
async def list_models(tenant: CredentialTenantDep, catalogue: CatalogueDep) -> ModelList:
    return await _model_list(catalogue, tenant)


@router.get("/{tenant}/v1/models")
async def list_tenant_models(tenant: InferenceTenantDep, catalogue: CatalogueDep) -> ModelList:
    return await _model_list(catalogue, tenant)


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, tenant: CredentialTenantDep, catalogue: CatalogueDep) -> ModelCard:
    return await _model_card(catalogue, tenant, model)


@router.get("/{tenant}/v1/models/{model:path}")
async def retrieve_tenant_model(model: str, tenant: InferenceTenantDep, catalogue: CatalogueDep) -> ModelCard:
    return await _model_card(catalogue, tenant, model)


async def _model_list(catalogue: Catalogue, tenant: TenantRef) -> ModelList:
    models = await catalogue.models_for(tenant.id)
    return ModelList(data=[_card(m) for m in models])


async def _model_card(catalogue: Catalogue, tenant: TenantRef, name: str) -> ModelCard:
    """The model, if the tenant may use it (else 404 model_not_found, as for a chat call)."""
    return _card(await catalogue.model_for(tenant.id, name))


def _card(model: CatalogueEntry) -> ModelCard:
    return ModelCard(id=model.name, created=int(model.created_at.timestamp()))


async def _chat_completions(body: ChatCompletionRequest, call: ModelCall) -> Response:
    refused = body.unsupported_fields()
    if refused:
        raise BadRequest(
            f"Unsupported parameter: '{refused[0]}' is not supported by this server",
            code="unsupported_parameter",
            param=refused[0],
        )
    turn = await call.start(_turn_request(body))
    if not body.stream:
        result = await complete(turn.events)
        return json_response(
            ChatCompletion(
                id=turn.message_id,
                model=turn.model,
                choices=[
                    Choice(message=AssistantMessage(content=result.text), finish_reason=result.finish_reason)
                ],
                usage=usage_of(result.prompt_tokens, result.completion_tokens),
                **turn.cited(result.references_used),
            )
        )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    first = await anext(turn.events)  # errors before the first token still get a proper status code
    frames = _openai_frames(first, turn, include_usage)
    return StreamingResponse(closing(frames), media_type="text/event-stream", headers=SSE_HEADERS)


def _turn_request(body: ChatCompletionRequest) -> TurnRequest:
    return TurnRequest(
        model=body.model,
        new_messages=[
            ChatMessage(role="system" if m.role == "developer" else m.role, content=m.text())
            for m in body.messages
        ],
        sampling=AskedSampling(
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
        ),
        conversation_id=body.conversation_id,
        knowledge=knowledge_ask(body.knowledge_base),
    )


async def _openai_frames(first: WorkerEvent, turn: Turn, include_usage: bool) -> AsyncIterator[bytes]:
    created = int(time.time())
    events = turn.events

    def chunk(choices: list[ChunkChoice], **extra: object) -> bytes:
        return sse(
            ChatCompletionChunk(
                id=turn.message_id, created=created, model=turn.model, choices=choices, **extra
            )
        )  # type: ignore[arg-type]

    try:
        yield chunk([ChunkChoice(delta=Delta(role="assistant", content=""))])
        async for event in resume(first, events):
            if not event.finished:
                yield chunk([ChunkChoice(delta=Delta(content=event.text))])
            elif event.finish_reason == "error":
                yield sse(STREAM_ERROR)
            else:
                # A grounded answer's citations ride on the chunk that ends it.
                finish = ChunkChoice(delta=Delta(), finish_reason=event.finish_reason or "stop")  # type: ignore[arg-type]
                yield chunk([finish], **turn.cited(event.references_used))
                if include_usage:
                    yield chunk([], usage=usage_of(event.prompt_tokens, event.completion_tokens))
                yield DONE
    finally:
        await events.aclose()  # type: ignore[attr-defined]


# OpenAI's other endpoint families (the first segment after /v1/). A client pointed at this server gets
# a 404 saying what is served, instead of a bare "Not found" or a 405 that suggests another method.
UNSUPPORTED_ENDPOINTS = frozenset(
    {
        "assistants",
        "audio",
        "batches",
        "completions",
        "containers",
        "conversations",
        "evals",
        "files",
        "fine_tuning",
        "images",
        "moderations",
        "realtime",
        "responses",
        "threads",
        "uploads",
        "vector_stores",
        "videos",
    }
)
_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class _UnsupportedEndpointRoute(APIRoute):
    """Matches only paths under an unsupported family, so it never shadows another route (nor turns
    the 405 of a served path into this 404)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            family = child_scope["path_params"]["endpoint"].partition("/")[0]
            if family not in UNSUPPORTED_ENDPOINTS:
                return Match.NONE, {}
        return match, child_scope


# Included after every other router: the metrics middleware tries routes in order for each request.
unsupported_router = APIRouter(route_class=_UnsupportedEndpointRoute, include_in_schema=False)


@unsupported_router.api_route("/v1/{endpoint:path}", methods=_ANY_METHOD)
@unsupported_router.api_route("/{tenant}/v1/{endpoint:path}", methods=_ANY_METHOD)
async def unsupported_endpoint(request: Request, endpoint: str) -> Response:
    served = ", ".join(
        f"{method} {route.path_format}"  # `{model}`, not `{model:path}`
        for served_router in (router, embeddings_router)
        for route in served_router.routes
        if isinstance(route, APIRoute) and route.path.startswith("/v1/")
        for method in sorted(route.methods)
    )
    raise NotFound(
        f"{request.method} /v1/{endpoint} is not supported by this server; it serves {served}",
        code="unsupported_endpoint",
    )
