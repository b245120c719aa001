"""Chunks of a document by the embedding model's tokens: semchunk cuts at the most meaningful boundary
that keeps a chunk within the size (paragraphs, then lines, sentences, clauses, words), and each chunk
repeats the end of the one before it (the overlap), so a passage cut in two is still found whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import semchunk
from tokenizers import Tokenizer

TokenCounter = Callable[[str], int]


def load_token_counter(tokenizer_json: Path) -> TokenCounter:
    """Counts a text's tokens as the model reads them, without its special tokens ([CLS], [SEP])."""
    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


def split(text: str, count_tokens: TokenCounter, chunk_tokens: int, overlap_tokens: int) -> list[str]:
    """The chunks of `text`, each at most `chunk_tokens` tokens, in order; none empty."""
    overlap = min(overlap_tokens, chunk_tokens // 2) or None
    chunks = semchunk.chunk(text, chunk_tokens, count_tokens, memoize=False, overlap=overlap)
    return [chunk.strip() for chunk in chunks if chunk.strip()]  # type: ignore[union-attr]
