"""PDF extraction is bounded in wall-clock time (LLMP_KNOWLEDGE_EXTRACT_TIMEOUT_S): a PDF slow to read
(hundreds of pages, thousands of text operators each) is stopped, its document `failed` saying why, the
process that read it gone; meanwhile the API answers, and afterwards PDFs are read as before. Its memory
is bounded too (LLMP_KNOWLEDGE_EXTRACT_MEMORY_MB)."""

from __future__ import annotations

import io
import multiprocessing
import threading

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from llm_platform.core.errors import BadRequest
from llm_platform.knowledge.extraction import ExtractionFailed
from llm_platform.knowledge.extraction_process import extract_pdf
from tests.llm_platform.knowledge.conftest import search, wait_for
from tests.llm_platform.knowledge.test_extraction import pdf_with_text

TIMEOUT_S = 1.0
SLOW_PAGES = 400  # read in full: ~30 s on this machine, so well past the limit on any


def slow_pdf(pages: int = SLOW_PAGES, lines: int = 3000) -> bytes:
    """Every page shows `lines` words, one text operator each (a small file: the streams compress)."""
    writer = PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    body = ("BT /F1 9 Tf 72 720 Td " + " ".join(f"(w{n}) Tj 0 -1 Td" for n in range(lines)) + " ET").encode()
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        content = DecodedStreamObject()
        content.set_data(body)
        page[NameObject("/Contents")] = writer._add_object(content.flate_encode())
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


LIMITS = {"max_pages": 500, "max_chars": 50_000_000, "memory_mb": 1024}


def test_a_pdf_is_read_in_a_child_process_with_the_same_answers():
    assert "Page two here" in extract_pdf(pdf_with_text("Page one", "Page two here"), timeout_s=30, **LIMITS)
    with pytest.raises(BadRequest) as refused:
        extract_pdf(pdf_with_text("a", "b", "c"), timeout_s=30, max_pages=2, max_chars=1000, memory_mb=1024)
    assert refused.value.code == "too_many_pages"
    with pytest.raises(ExtractionFailed, match="could not be parsed"):
        extract_pdf(b"%PDF-1.4 garbage", timeout_s=30, **LIMITS)


def test_reading_stops_at_the_time_limit_and_the_child_is_gone():
    with pytest.raises(ExtractionFailed, match="longer than the limit of 1 seconds"):
        extract_pdf(slow_pdf(), timeout_s=TIMEOUT_S, **LIMITS)
    assert multiprocessing.active_children() == []


def test_reading_stops_at_the_memory_limit_and_the_child_is_gone():
    """One page of 200,000 text operators: pypdf's own per-stream bounds let it grow by some hundreds of
    MB (read in full with the default limit), past a limit of 64 MB."""
    big_page = slow_pdf(pages=1, lines=200_000)
    with pytest.raises(ExtractionFailed, match="needed more than the limit of 64 MB of memory"):
        extract_pdf(big_page, timeout_s=60, **(LIMITS | {"memory_mb": 64}))
    assert multiprocessing.active_children() == []
    assert "Page two here" in extract_pdf(pdf_with_text("Page two here"), timeout_s=30, **LIMITS)


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return settings.model_copy(
        update={"knowledge_extract_timeout_s": TIMEOUT_S, "knowledge_max_text_chars": LIMITS["max_chars"]}
    )


def test_a_slow_pdf_fails_with_a_reason_and_nothing_else_waits(platform, tenant_a, embedder):
    client, slug, headers = platform.client, tenant_a.slug, tenant_a.admin_headers
    data = slow_pdf()
    answers: list = []
    upload = threading.Thread(
        target=lambda: answers.append(
            client.post(f"/{slug}/kb/documents", files={"file": ("slow.pdf", data)}, headers=headers)
        )
    )
    upload.start()
    # While the PDF is being read, the API answers other requests.
    listed = client.get(f"/{slug}/kb/collections", headers=headers)
    assert listed.status_code == 200
    upload.join(timeout=120)
    assert not upload.is_alive()
    response = answers[0]
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "failed"
    document = wait_for(client, slug, headers, response.json()["id"])
    assert document["status"] == "failed"
    assert document["error"] == f"Reading the PDF took longer than the limit of {TIMEOUT_S:g} seconds"
    assert multiprocessing.active_children() == []
    # Nothing else broke: the next PDF is read and indexed.
    fine = client.post(
        f"/{slug}/kb/documents",
        files={"file": ("fine.pdf", pdf_with_text("A note about kites and their strings"))},
        headers=headers,
    )
    assert fine.status_code == 202, fine.text
    assert wait_for(client, slug, headers, fine.json()["id"])["status"] == "ready"
    assert search(client, slug, headers, "kites")[0]["document_id"] == fine.json()["id"]
