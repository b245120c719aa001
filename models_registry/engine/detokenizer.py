"""Incremental detokenization and stop strings.

Text is emitted only once it decodes to whole characters (a byte-level BPE token may end in the middle
of a UTF-8 sequence), and never past a possible beginning of a stop string, so the concatenated stream
equals the non-streamed answer byte for byte.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

REPLACEMENT_CHAR = "\ufffd"


class IncrementalDetokenizer:
    """Emits decode(tokens[p:]) minus decode(tokens[p:r]) for a window that starts at the last clean
    boundary p: both decodes start at the same token, so whatever the tokenizer does at the start of a
    text (SentencePiece drops a leading space) cancels out, and the pieces add up to decode(tokens)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self.token_ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def push(self, token_id: int) -> str:
        """Adds a token; returns the text that is now complete (possibly empty)."""
        self.token_ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """At the end of generation: whatever is left, replacement characters included."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        decode = self._tokenizer.decode
        prefix_text = decode(
            self.token_ids[self._prefix_offset : self._read_offset], skip_special_tokens=True
        )
        full_text = decode(self.token_ids[self._prefix_offset :], skip_special_tokens=True)
        if len(full_text) <= len(prefix_text) and not final:
            return ""
        if full_text.endswith(REPLACEMENT_CHAR) and not final:
            return ""  # an incomplete UTF-8 sequence: wait for the bytes that finish it
        new_text = full_text[len(prefix_text) :]
        self._prefix_offset = self._read_offset
        self._read_offset = len(self.token_ids)
        return new_text


class StopStringFilter:
    """Holds back text that might be the start of a stop string; cuts the output at the first match."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self._stop = stop
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Returns the text that is safe to emit now; sets `stopped` when a stop string appeared."""
        if self.stopped:
            return ""
        if not self._stop:
            return text
        self._pending += text
        cut = min((i for i in (self._pending.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            emitted, self._pending = self._pending[:cut], ""
            return emitted
        hold = self._longest_stop_prefix_at_end()
        emitted = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(self._pending) - hold :]
        return emitted

    def flush(self) -> str:
        emitted, self._pending = ("" if self.stopped else self._pending), ""
        return emitted

    def _longest_stop_prefix_at_end(self) -> int:
        longest = 0
        for stop in self._stop:
            for length in range(min(len(stop) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(stop[:length]):
                    longest = length
                    break
        return longest
