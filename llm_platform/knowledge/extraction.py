"""Text out of an upload: .txt and .md as UTF-8 text, .html through selectolax (a real HTML parser;
scripts, styles and the like dropped), .pdf through pypdf, page by page.

A document that cannot be read raises ExtractionFailed (the document is then `failed` with its reason);
one that is too big to read safely raises a domain error the client sees at once. The file's name
only picks the type (its extension): it never becomes a path.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import PurePosixPath

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from selectolax.lexbor import LexborHTMLParser

from llm_platform.core.errors import BadRequest, UnsupportedMediaType

logger = logging.getLogger(__name__)

SOURCE_TYPES = {".txt": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".pdf": "pdf"}
CONTENT_TYPES = {
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "text/html": "html",
    "application/pdf": "pdf",
}
_NOT_TEXT = ["script", "style", "noscript", "template", "iframe", "svg", "head"]
# Elements that end a paragraph: a blank line after each keeps chunk boundaries where the page had them.
_BLOCKS = "p,div,li,h1,h2,h3,h4,h5,h6,br,tr,pre,blockquote,section,article,table,dd,dt"
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_SPACES = re.compile(r"[ \t\r\f\v]+")


class ExtractionFailed(Exception):
    """The upload could not be read as its type; the message is safe to show as the document's error."""


def source_type(filename: str | None, content_type: str | None) -> str:
    """txt, md, html or pdf, from the file name's extension, else its declared content type."""
    suffix = PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()
    if suffix in SOURCE_TYPES:
        return SOURCE_TYPES[suffix]
    declared = (content_type or "").split(";")[0].strip().lower()
    if not suffix and declared in CONTENT_TYPES:
        return CONTENT_TYPES[declared]
    raise UnsupportedMediaType(
        "Unsupported document type: upload .txt, .md, .html or .pdf", code="unsupported_document_type"
    )


def title_from(filename: str | None) -> str | None:
    """The file's name without folders or extension (a title, never a path)."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem.strip()[:300] or None


def extract(data: bytes, kind: str, *, max_pages: int, max_chars: int) -> str:
    """The document's text, whitespace tidied (paragraphs kept apart by a blank line)."""
    if kind == "pdf":
        text = _pdf_text(data, max_pages=max_pages, max_chars=max_chars)
    else:
        decoded = _decode(data)
        text = _html_text(decoded) if kind == "html" else decoded
    text = tidy(text)
    if len(text) > max_chars:
        raise BadRequest(
            f"The document's text is over the limit of {max_chars} characters", code="document_too_large"
        )
    return text


def tidy(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\x00", "").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractionFailed("The file is not UTF-8 text") from exc


def _html_text(html: str) -> str:
    tree = LexborHTMLParser(html)
    root = tree.body or tree.root
    if root is None:
        raise ExtractionFailed("The HTML could not be parsed")
    tree.strip_tags(_NOT_TEXT)
    for block in tree.css(_BLOCKS):
        block.insert_after("\n\n")
    return root.text(separator="")


def _pdf_text(data: bytes, *, max_pages: int, max_chars: int) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = len(reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ExtractionFailed("The PDF could not be parsed") from exc
    if pages > max_pages:
        raise BadRequest(f"The PDF has {pages} pages, over the limit of {max_pages}", code="too_many_pages")
    texts: list[str] = []
    total = 0
    for number, page in enumerate(reader.pages, start=1):
        try:
            # pypdf caps what one stream may inflate to (ZLIB_MAX_OUTPUT_LENGTH): a zip bomb fails here.
            text = page.extract_text() or ""
        except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
            logger.info("PDF page %d unreadable: %s", number, type(exc).__name__)
            raise ExtractionFailed(f"Page {number} of the PDF could not be read") from exc
        total += len(text)
        if total > max_chars:  # stop reading, rather than hold all of a huge document first
            raise BadRequest(
                f"The document's text is over the limit of {max_chars} characters", code="document_too_large"
            )
        texts.append(text)
    return "\n\n".join(texts)
