"""Text out of .txt, .md, .html (scripts and styles dropped, paragraphs kept apart) and .pdf (a small
PDF made here with pypdf), and the refusals: unsupported types, too many pages, unreadable files."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from llm_platform.core.errors import BadRequest, UnsupportedMediaType
from llm_platform.knowledge.extraction import ExtractionFailed, extract, source_type, title_from

LIMITS = {"max_pages": 5, "max_chars": 10_000}


def pdf_with_text(*pages: str) -> bytes:
    """A PDF whose pages each show one line of text in Helvetica."""
    writer = PdfWriter()
    for text in pages:
        page = writer.add_blank_page(612, 792)
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
        )
        content = DecodedStreamObject()
        content.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(content)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_text_and_markdown_are_read_as_utf8():
    assert (
        extract("caf\u00e9  au   lait\r\n\n\n\nnext".encode(), "txt", **LIMITS) == "caf\u00e9 au lait\n\nnext"
    )
    assert extract(b"\xef\xbb\xbf# Title\n\nBody *text*", "md", **LIMITS) == "# Title\n\nBody *text*"
    with pytest.raises(ExtractionFailed):
        extract("caf\u00e9".encode("latin-1"), "txt", **LIMITS)


def test_html_keeps_text_and_paragraphs_and_drops_scripts():
    html = (
        b"<html><head><title>T</title><style>p{color:red}</style></head><body>"
        b"<h1>Heading</h1><p>First <b>bold</b> paragraph.</p><script>alert('x')</script>"
        b"<ul><li>one</li><li>two</li></ul></body></html>"
    )
    assert extract(html, "html", **LIMITS) == "Heading\n\nFirst bold paragraph.\n\none\n\ntwo"


def test_pdf_text_page_by_page():
    text = extract(pdf_with_text("Hello from page one", "Page two here"), "pdf", **LIMITS)
    assert "Hello from page one" in text and "Page two here" in text
    assert text.index("one") < text.index("two")


def test_pdf_limits_and_failures():
    with pytest.raises(BadRequest) as refused:
        extract(pdf_with_text("a", "b", "c"), "pdf", max_pages=2, max_chars=10_000)
    assert refused.value.code == "too_many_pages"
    with pytest.raises(BadRequest) as refused:
        extract(pdf_with_text("x" * 600, "y" * 600), "pdf", max_pages=5, max_chars=1000)
    assert refused.value.code == "document_too_large"
    with pytest.raises(ExtractionFailed):
        extract(b"%PDF-1.4 garbage", "pdf", **LIMITS)


def test_types_come_from_the_extension_or_the_declared_type():
    assert source_type("notes.TXT", None) == "txt"
    assert source_type("readme.md", "application/octet-stream") == "md"
    assert source_type("page.htm", None) == "html"
    assert source_type("paper.pdf", None) == "pdf"
    assert source_type("blob", "application/pdf") == "pdf"
    for name, declared in (("x.exe", None), ("x.docx", "text/plain"), ("blob", "image/png"), (None, None)):
        with pytest.raises(UnsupportedMediaType):
            source_type(name, declared)


def test_titles_never_keep_folders():
    assert title_from("../../etc/passwd.txt") == "passwd"
    assert title_from("C:\\Users\\me\\report.pdf") == "report"
    assert title_from("") is None
