"""A PDF's text, extracted in a child process that is killed at a time limit
(LLMP_KNOWLEDGE_EXTRACT_TIMEOUT_S) and may not grow past a memory limit
(LLMP_KNOWLEDGE_EXTRACT_MEMORY_MB): past either the document is `failed`, saying so.

pypdf bounds each stream it decodes and parses (75 MB decoded, a count of tokens: a 10 MB stream of text
operators took the reader to 320 MB and then failed, within the time limit), but nothing bounds the
whole: a file of many large objects or arrays is read into Python objects far larger than its bytes.
So the child's address space is limited (RLIMIT_AS, on Linux): an allocation past it fails in the child,
whose memory goes with it, never in the API process.

Why a process: pypdf is pure Python, and the time one page takes has no bound of its own (a page's
content stream may hold millions of operators within the size limits). A thread cannot be stopped: it
would parse on, a core busy, long after the upload was answered, and a few such uploads would take every
core of a replica. A child process is killed, and its memory goes with it.

The children are forked by a fork server (multiprocessing's `forkserver`: one small single-threaded
process, started at the first PDF, with the extraction modules imported), never by the API process
itself: forking a process that runs threads (the event loop's executor, FAISS's) may copy a lock another
thread holds; and a fork server's child starts in milliseconds where a fresh interpreter takes most of a
second to import pypdf.

HTML and plain text are read in the API process, as before: selectolax (C) and the decoding are linear
in the upload's size, which is bounded.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
from multiprocessing.connection import Connection

from llm_platform.core.errors import BadRequest
from llm_platform.knowledge import extraction

logger = logging.getLogger(__name__)

_CONTEXT = multiprocessing.get_context("forkserver")
# What a child needs, imported once by the fork server. A child also runs the server's main script again
# before its target (multiprocessing's "prepare"): under `llmp` that script imports llm_platform.cli, and
# without the CLI here each PDF's child imported it afresh, 0.6-0.7 s a PDF (0.017 s with it; asking
# for "__main__" instead does nothing on Python 3.11, whose fork server looks for a key that
# get_preparation_data never writes).
_CONTEXT.set_forkserver_preload(["llm_platform.cli", "llm_platform.knowledge.extraction"])
_GONE_S = 5.0  # how long a killed child may take to be reaped


def extract_pdf(data: bytes, *, max_pages: int, max_chars: int, timeout_s: float, memory_mb: int) -> str:
    """The PDF's text, as `extraction.extract` reads it, or ExtractionFailed once `timeout_s` has
    passed or the child needed more than `memory_mb` beyond what it started with. Blocks its caller (run
    it in a thread), never the child beyond `timeout_s`."""
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(
        target=_extract_in_child,
        args=(sender, data, max_pages, max_chars, memory_mb),
        name="pdf-extraction",
        daemon=True,
    )
    try:
        child.start()
        sender.close()  # so that the child's end closing (it died) reads as EOF here
        if not receiver.poll(timeout_s):
            logger.info("PDF extraction stopped at the time limit of %g s", timeout_s)
            raise extraction.ExtractionFailed(
                f"Reading the PDF took longer than the limit of {timeout_s:g} seconds"
            )
        outcome = receiver.recv()
    except EOFError as exc:  # the child died without an answer (killed, out of memory)
        raise extraction.ExtractionFailed("The PDF could not be read") from exc
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        if child.pid is not None:  # started (a failed start raises what failed, not join's assertion)
            child.join(_GONE_S)
    kind, *values = outcome
    if kind == "refused":
        message, code = values
        raise BadRequest(message, code=code)
    if kind == "failed":
        raise extraction.ExtractionFailed(values[0])
    return values[0]


def _extract_in_child(
    sender: Connection, data: bytes, max_pages: int, max_chars: int, memory_mb: int
) -> None:
    """Runs in the child: sends ("text", text), ("failed", reason) or ("refused", message, code)."""
    try:
        _limit_memory(memory_mb)
        outcome: tuple[str, ...] = (
            "text",
            extraction.extract(data, "pdf", max_pages=max_pages, max_chars=max_chars),
        )
    except MemoryError:
        outcome = ("failed", f"Reading the PDF needed more than the limit of {memory_mb} MB of memory")
    except extraction.ExtractionFailed as exc:
        outcome = ("failed", str(exc))
    except BadRequest as exc:  # too many pages, too much text: the client is told at once
        outcome = ("refused", exc.message, exc.code)
    except Exception:  # a parser's bug is this document's failure, never a traceback
        outcome = ("failed", "The PDF could not be read")
    sender.send(outcome)
    sender.close()


def _limit_memory(memory_mb: int) -> None:
    """Caps the child's address space at its size now (the fork server's imports, the PDF's bytes) plus
    `memory_mb`. Where /proc is missing (not Linux) the child runs without a cap, as before."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[0])
    except OSError:
        return
    size = pages * resource.getpagesize()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
