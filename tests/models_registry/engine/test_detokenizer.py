"""Incremental detokenization and stop strings."""

from __future__ import annotations

from models_registry.engine.detokenizer import IncrementalDetokenizer, StopStringFilter
from models_registry.engine.loader import load_chat_model

TEXT = "Grüße, 你好世界! Emoji: 🎉🚀👩‍👩‍👧 done."


def test_byte_tokens_stream_whole_characters_only(tiny_model_dir):
    _, tokenizer = load_chat_model(tiny_model_dir)
    token_ids = tokenizer.encode(TEXT, add_special_tokens=False)
    assert len(token_ids) == len(TEXT.encode())  # one token per byte: many split characters
    detokenizer = IncrementalDetokenizer(tokenizer)
    chunks = [detokenizer.push(token) for token in token_ids] + [detokenizer.flush()]
    assert "".join(chunks) == TEXT
    assert all("\ufffd" not in chunk for chunk in chunks)
    assert "".join(chunks).encode() == tokenizer.decode(token_ids).encode()


def test_stop_filter_holds_back_possible_prefixes():
    stops = StopStringFilter(("END", "\n\n"))
    assert stops.feed("hello E") == "hello "
    assert stops.feed("N") == ""
    assert stops.feed("ough") == "ENough"
    assert stops.feed(" bye\n") == " bye"
    assert stops.feed("\nmore") == ""
    assert stops.stopped
    assert stops.flush() == ""


def test_stop_filter_without_stops_passes_everything():
    stops = StopStringFilter(())
    assert stops.feed("abc") == "abc"
    assert stops.flush() == ""
