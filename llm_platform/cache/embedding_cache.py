"""Embeddings in the response cache: deterministic by nature (the same model and inputs give the same
vectors), so every request may be cached, per tenant like chat answers.

The key hashes the tenant, the model and the inputs exactly as sent; the entry holds the vectors as
little-endian float32 (what the model computed, a quarter of their JSON size) and the tokens they took.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import uuid
from array import array
from dataclasses import dataclass

_HEADER = struct.Struct("<III")  # prompt tokens, vectors, dimensions


def embedding_cache_key(tenant_id: uuid.UUID, model: str, inputs: list[str] | list[list[int]]) -> str:
    # The tenant is in the key's prefix as well as its hash: the same inputs of another tenant are
    # another entry, and a tenant's entries can be found by prefix.
    canonical = json.dumps({"model": model, "input": inputs}, ensure_ascii=False, separators=(",", ":"))
    return f"llmp:cache:{tenant_id}:embeddings:{hashlib.sha256(canonical.encode()).hexdigest()}"


@dataclass(frozen=True)
class CachedEmbeddings:
    vectors: list[list[float]]
    prompt_tokens: int

    def to_bytes(self) -> bytes:
        dimensions = len(self.vectors[0]) if self.vectors else 0
        values = array("f", (value for vector in self.vectors for value in vector))
        if sys.byteorder == "big":
            values.byteswap()
        return _HEADER.pack(self.prompt_tokens, len(self.vectors), dimensions) + values.tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CachedEmbeddings | None:
        """None for an entry that is not one (cut short, or written by another version)."""
        if len(raw) < _HEADER.size:
            return None
        prompt_tokens, count, dimensions = _HEADER.unpack_from(raw)
        body = raw[_HEADER.size :]
        if len(body) != count * dimensions * 4:
            return None
        values = array("f")
        values.frombytes(body)
        if sys.byteorder == "big":
            values.byteswap()
        flat = values.tolist()
        return cls([flat[i * dimensions : (i + 1) * dimensions] for i in range(count)], prompt_tokens)
