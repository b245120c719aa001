"""Bad input: an unsupported type (415), an upload over the limit (413), an empty document (400), a file
that does not parse (the document `failed` with its reason), too many PDF pages, file names that try
to be paths."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfWriter

from tests.llm_platform.knowledge.conftest import search, wait_for
from tests.responses import assert_error


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return settings.model_copy(update={"knowledge_max_upload_bytes": 4096, "knowledge_max_pdf_pages": 2})


def _upload(
    platform, tenant, name: str, data: bytes, content_type: str = "application/octet-stream", **fields
):  # type: ignore[no-untyped-def]
    return platform.client.post(
        f"/{tenant.slug}/kb/documents",
        files={"file": (name, data, content_type)},
        data=fields,
        headers=tenant.admin_headers,
    )


def test_unsupported_types_answer_415(platform, tenant_a):
    assert_error(_upload(platform, tenant_a, "tool.exe", b"MZ..."), 415, "unsupported_document_type")
    assert_error(_upload(platform, tenant_a, "noext", b"x", "image/png"), 415)
    response = platform.client.post(
        f"/{tenant_a.slug}/kb/documents",
        content=b"text",
        headers={**tenant_a.admin_headers, "content-type": "text/plain"},
    )
    assert_error(response, 415)


def test_over_the_upload_limit_answers_413(platform, tenant_a):
    assert_error(_upload(platform, tenant_a, "big.txt", b"a " * 3000), 413, "file_too_large")
    # Far over: refused from Content-Length, before the body is read.
    assert_error(_upload(platform, tenant_a, "huge.txt", b"a" * 2_000_000), 413)
    assert (
        platform.client.get(f"/{tenant_a.slug}/kb/documents", headers=tenant_a.admin_headers).json()["data"]
        == []
    )


def test_empty_documents_answer_400(platform, tenant_a):
    assert_error(_upload(platform, tenant_a, "empty.txt", b""), 400, "empty_document")
    assert_error(_upload(platform, tenant_a, "blank.md", b"  \n\n \t"), 400, "empty_document")
    assert_error(
        _upload(platform, tenant_a, "blank.html", b"<html><script>x()</script></html>"), 400, "empty_document"
    )
    response = platform.client.post(
        f"/{tenant_a.slug}/kb/documents", json={"text": "   "}, headers=tenant_a.admin_headers
    )
    assert_error(response, 400, "empty_document")


def test_a_file_that_does_not_parse_fails_with_a_reason(platform, tenant_a, embedder):
    for name, data in (
        ("broken.pdf", b"%PDF-1.7 this is not a pdf"),
        ("latin.txt", "caf\u00e9".encode("latin-1")),
    ):
        response = _upload(platform, tenant_a, name, data)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "failed"
        document = wait_for(platform.client, tenant_a.slug, tenant_a.admin_headers, response.json()["id"])
        assert document["status"] == "failed" and document["error"], document
        assert "Traceback" not in document["error"]
    # Nothing else broke: a good document still goes through.
    response = _upload(platform, tenant_a, "fine.txt", b"a perfectly fine document about kites")
    assert (
        wait_for(platform.client, tenant_a.slug, tenant_a.admin_headers, response.json()["id"])["status"]
        == "ready"
    )
    assert search(platform.client, tenant_a.slug, tenant_a.admin_headers, "kites")


def test_pdfs_over_the_page_limit_are_refused(platform, tenant_a):
    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(72, 72)
    buffer = io.BytesIO()
    writer.write(buffer)
    assert_error(_upload(platform, tenant_a, "long.pdf", buffer.getvalue()), 400, "too_many_pages")


def test_file_names_never_become_paths(platform, tenant_a, embedder, tmp_path):
    before = set(tmp_path.rglob("*"))
    for name in ("../../etc/passwd.txt", "..\\..\\boot.ini.md", "/abs/path/notes.txt"):
        response = _upload(platform, tenant_a, name, f"content of {name}".encode())
        assert response.status_code == 202, response.text
        document = wait_for(platform.client, tenant_a.slug, tenant_a.admin_headers, response.json()["id"])
        assert "/" not in document["title"] and "\\" not in document["title"], document
    written = {path.name for path in set(tmp_path.rglob("*")) - before}
    assert not any("passwd" in name or "boot" in name or "notes" in name for name in written)


def test_bad_form_fields(platform, tenant_a):
    assert_error(_upload(platform, tenant_a, "a.txt", b"text", metadata="not json"), 422)
    assert_error(_upload(platform, tenant_a, "a.txt", b"text", metadata='{"nested": {"a": 1}}'), 422)
    assert_error(_upload(platform, tenant_a, "a.txt", b"text", collection="../x"), 422)
    response = platform.client.post(
        f"/{tenant_a.slug}/kb/documents",
        data={"title": "no file"},
        files={"other": ("a", b"")},
        headers=tenant_a.admin_headers,
    )
    assert_error(response, 400, "missing_file")
    response = platform.client.post(
        f"/{tenant_a.slug}/kb/documents",
        content=b"{not json",
        headers={**tenant_a.admin_headers, "content-type": "application/json"},
    )
    assert_error(response, 400)
