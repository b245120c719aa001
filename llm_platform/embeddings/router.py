"""The embeddings front doors: OpenAI's POST /v1/embeddings (also under /{tenant}/v1/ for platform
admins, as chat completions are), and POST /{tenant}/embeddings, whose model defaults to the platform's
embedding model. Each translates its body to the one flow (flow.py) and the vectors back."""

from __future__ import annotations

from fastapi import APIRouter, Response

from llm_platform.auth.model_call import SECURITY
from llm_platform.core.openapi_errors import errors
from llm_platform.embeddings.dependencies import CredentialEmbeddingsDep, EmbeddingsCall, TenantEmbeddingsDep
from llm_platform.embeddings.flow import EmbeddingsAsk, as_inputs, encode_base64
from llm_platform.embeddings.protocol import (
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    TenantEmbeddingRequest,
)

router = APIRouter(tags=["embeddings"])


@router.post(
    "/v1/embeddings", response_model=EmbeddingList, responses=errors(404, 429, 503), openapi_extra=SECURITY
)
async def create_embeddings(body: EmbeddingRequest, call: CredentialEmbeddingsDep) -> Response:
    return await _embeddings(body, call)


@router.post(
    "/{tenant}/v1/embeddings",
    response_model=EmbeddingList,
    responses=errors(429, 503),
    openapi_extra=SECURITY,
)
async def create_tenant_openai_embeddings(body: EmbeddingRequest, call: TenantEmbeddingsDep) -> Response:
    return await _embeddings(body, call)


@router.post(
    "/{tenant}/embeddings",
    response_model=EmbeddingList,
    responses=errors(400, 429, 503),
    openapi_extra=SECURITY,
)
async def create_tenant_embeddings(body: TenantEmbeddingRequest, call: TenantEmbeddingsDep) -> Response:
    return await _embeddings(body, call)


async def _embeddings(body: EmbeddingRequest, call: EmbeddingsCall) -> Response:
    embedded = await call.embed(EmbeddingsAsk(body.model, as_inputs(body.input), body.dimensions))
    as_base64 = body.encoding_format == "base64"
    answer = EmbeddingList(
        data=[
            Embedding(index=index, embedding=encode_base64(vector) if as_base64 else vector)
            for index, vector in enumerate(embedded.vectors)
        ],
        model=embedded.model,
        usage=EmbeddingUsage(prompt_tokens=embedded.prompt_tokens, total_tokens=embedded.prompt_tokens),
    )
    # Serialized by pydantic in one pass (FastAPI would walk a returned model with jsonable_encoder first).
    return Response(answer.model_dump_json(), media_type="application/json")
