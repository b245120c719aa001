"""OpenAI's embeddings wire protocol (POST /v1/embeddings), and the tenant door's form of it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm_platform.core.unicode_text import Text

TokenId = Annotated[int, Field(ge=0, lt=2**31)]  # of the model's own vocabulary: the worker checks its size
EmbeddingInput = (
    Annotated[Text, Field(description="One text")]
    | Annotated[list[Text], Field(description="Texts, each embedded on its own")]
    | Annotated[list[TokenId], Field(description="One input as token ids of the model's vocabulary")]
    | Annotated[list[list[TokenId]], Field(description="Inputs as token ids of the model's vocabulary")]
)


class EmbeddingRequest(BaseModel):
    """As OpenAI's. Token ids are the model's own (what its tokenizer makes of a text, without special
    tokens), not tiktoken's: they embed exactly as their text does."""

    model_config = ConfigDict(extra="forbid")

    input: EmbeddingInput
    model: Annotated[Text, Field(min_length=1, max_length=200)]
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="`base64`: each vector as little-endian float32, base64-encoded (OpenAI's)"
    )
    dimensions: int | None = Field(None, ge=1, description="Must be the model's own: vectors are not cut")
    user: Annotated[Text, Field(max_length=256)] | None = Field(None, description="Accepted, not used")


class TenantEmbeddingRequest(EmbeddingRequest):
    """/{tenant}/embeddings: `model` may be left out for the platform's default embedding model."""

    model: Annotated[Text, Field(min_length=1, max_length=200)] | None = None  # type: ignore[assignment]


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # a string when encoding_format is base64


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
