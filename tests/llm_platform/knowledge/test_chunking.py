"""Chunks by tokens: within the size, cut at paragraph and sentence boundaries, overlapping."""

from __future__ import annotations

import itertools

from llm_platform.knowledge.chunking import split


def words(text: str) -> int:
    return len(text.split())


def test_chunks_stay_within_the_size_and_cover_the_text():
    text = "\n\n".join(" ".join(f"Sentence {p}.{s} has six words." for s in range(6)) for p in range(5))
    chunks = split(text, words, 30, 0)
    assert all(words(chunk) <= 30 for chunk in chunks)
    assert " ".join(chunks).split() == text.split()  # no overlap: every word once, in order


def test_cuts_fall_on_paragraph_then_sentence_boundaries():
    paragraphs = ["alpha " * 10, "beta " * 10, "gamma " * 10]
    chunks = split("\n\n".join(p.strip() for p in paragraphs), words, 12, 0)
    assert chunks == [p.strip() for p in paragraphs]
    sentences = "One two three four. Five six seven eight. Nine ten eleven twelve."
    assert all(chunk.endswith(".") for chunk in split(sentences, words, 5, 0))


def test_chunks_overlap():
    text = " ".join(f"w{n}." for n in range(60))
    chunks = split(text, words, 10, 4)
    assert all(words(chunk) <= 10 for chunk in chunks)
    for before, after in itertools.pairwise(chunks):
        assert set(before.split()) & set(after.split()), (before, after)
    assert {w for chunk in chunks for w in chunk.split()} == set(text.split())


def test_short_and_blank_text():
    assert split("just a line", words, 10, 2) == ["just a line"]
    assert split("   \n\n  ", words, 10, 2) == []
