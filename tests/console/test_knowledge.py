"""The knowledge-base pages in a real browser, on the tiny encoder's worker: a tenant admin makes a
collection, uploads a file (its progress, then its status polled until ready), sees a broken file fail
with its reason, filters and searches, asks the playground a grounded question and sees the document
cited, deletes with confirmation; documents page with the API's cursor; another tenant's knowledge base
never shows."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.conftest import TINY_MODEL
from tests.console.conftest import sign_in
from tests.llm_platform.knowledge.conftest import wait_for

ZORBIUM = "Zorbium is a fictional metal. Zorbium boils at twelve degrees and glows green in the dark."


def test_a_tenant_admin_uploads_searches_and_the_playground_cites_the_document(
    console, open_console, screenshots, tmp_path
):
    _, root = console.platform_admin()
    slug = console.tenant(root, ("kb@a.example.com", "tenant_admin"))
    admin = console.login("kb@a.example.com", slug)
    page = open_console()
    sign_in(page, "kb@a.example.com", slug)
    page.get_by_role("link", name="Knowledge base").click()
    expect(page.get_by_role("heading", name=f"Knowledge base of {slug}")).to_be_visible()
    expect(page.get_by_text("No documents yet: upload one above")).to_be_visible()

    page.get_by_label("New collection").fill("manuals")
    page.get_by_role("button", name="Create collection").click()
    expect(page.get_by_text("Collection manuals created.")).to_be_visible()
    expect(page.locator("#collections tr[data-collection=manuals]")).to_contain_text("0")

    # A file, with its upload's progress, then its ingestion followed until it is ready.
    notes = tmp_path / "zorbium.txt"
    notes.write_text(ZORBIUM)
    page.locator("input[name=file]").set_input_files(notes)
    page.get_by_label("Title").fill("Zorbium facts")
    page.locator("select[name=upload-collection]").select_option("manuals")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_contain_text('"Zorbium facts" is ready: 1 passage indexed.')
    expect(page.locator("#upload-progress")).to_have_js_property("value", 100)
    row = page.locator("#documents tr").filter(has_text="Zorbium facts")
    expect(row).to_contain_text("manuals")
    expect(row.locator(".status")).to_have_text("ready")
    expect(page.locator("#collections tr[data-collection=manuals]")).to_contain_text("1")

    # A file that does not parse is accepted, then fails, and says why (the API's own reason).
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"this is not a PDF at all")
    page.locator("input[name=file]").set_input_files(broken)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status").get_by_role("alert")).to_contain_text('"broken.pdf" failed:')
    failed = httpx.get(f"{console.url}/{slug}/kb/documents", params={"status": "failed"}, headers=admin)
    (failure,) = failed.json()["data"]
    assert failure["error"]
    broken_row = page.locator(f"#documents tr[data-document='{failure['id']}']")
    expect(broken_row.locator(".status")).to_have_text("failed")
    expect(broken_row).to_contain_text(failure["error"])
    expect(page.locator("#upload-status")).to_contain_text(failure["error"])

    # A type the platform does not read is refused at once, with the API's message.
    program = tmp_path / "tool.exe"
    program.write_bytes(b"MZ")
    refused = httpx.post(
        f"{console.url}/{slug}/kb/documents", files={"file": ("tool.exe", b"MZ")}, headers=admin
    )
    assert refused.status_code == 415
    page.locator("input[name=file]").set_input_files(program)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status .upload-line").first).to_have_text(refused.json()["error"]["message"])

    # Filters: by status, by collection.
    page.locator("select[name=filter-status]").select_option("failed")
    expect(page.locator("#documents tbody tr")).to_have_count(1)
    expect(page.locator("#documents tbody tr")).to_contain_text("broken")
    page.locator("select[name=filter-status]").select_option("")
    expect(page.locator("#documents tbody tr")).to_have_count(2)
    page.locator("select[name=filter-collection]").select_option("manuals")
    expect(page.locator("#documents tbody tr")).to_have_count(1)
    expect(page.locator("#documents tbody tr")).to_contain_text("Zorbium facts")
    page.locator("select[name=filter-collection]").select_option("")
    expect(page.locator("#documents tbody tr")).to_have_count(2)

    # Search, by words: the passage and where it comes from.
    page.get_by_label("Search", exact=True).fill("when does zorbium boil")
    page.locator("select[name=mode]").select_option("lexical")
    page.get_by_role("button", name="Search", exact=True).click()
    results = page.locator("#search-results li")
    expect(results).to_have_count(1)
    expect(results).to_contain_text("Zorbium facts")
    expect(results).to_contain_text("manuals")
    expect(results.locator("blockquote")).to_have_text(ZORBIUM)
    page.screenshot(path=screenshots / "knowledge.png", full_page=True)

    # The playground grounds its answer in it, and names it.
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Model").select_option(TINY_MODEL)
    page.get_by_label("Ground answers in the knowledge base").check()
    page.get_by_label("Max tokens").fill("4")
    page.get_by_label("Message").fill("At what temperature does Zorbium boil?")
    page.get_by_role("button", name="Send").click()
    citations = page.locator(".message.assistant .citations li")
    expect(citations).to_have_count(1)
    expect(citations).to_contain_text(re.compile(r"^Zorbium facts \(passage 1, score [\d.]+\)$"))
    page.screenshot(path=screenshots / "playground-citations.png", full_page=True)

    # Deleting asks first; cancelling keeps the document.
    page.get_by_role("link", name="Knowledge base").click()
    row = page.locator("#documents tr").filter(has_text="Zorbium facts")
    row.get_by_role("button", name="Delete Zorbium facts").click()
    expect(page.get_by_role("dialog")).to_contain_text("Zorbium facts")
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(row).to_be_visible()
    document_id = row.get_attribute("data-document")
    row.get_by_role("button", name="Delete Zorbium facts").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_text('"Zorbium facts" deleted.')).to_be_visible()
    expect(row).to_have_count(0)
    assert httpx.get(f"{console.url}/{slug}/kb/documents/{document_id}", headers=admin).status_code == 404

    collection = page.locator("#collections tr[data-collection=manuals]")
    collection.get_by_role("button", name="Delete collection manuals").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Collection manuals deleted.")).to_be_visible()
    expect(collection).to_have_count(0)
    names = [c["name"] for c in httpx.get(f"{console.url}/{slug}/kb/collections", headers=admin).json()]
    assert "manuals" not in names


def test_documents_page_with_the_cursor_and_members_only_read(console, open_console):
    _, root = console.platform_admin()
    slug = console.tenant(root, ("reader@a.example.com", "member"))
    for n in range(23):
        body = {"title": f"Note {n:02d}", "text": f"Note number {n} about the cat and the dog."}
        assert httpx.post(f"{console.url}/{slug}/kb/documents", json=body, headers=root).status_code == 202
    page = open_console()
    sign_in(page, "reader@a.example.com", slug)
    page.get_by_role("link", name="Knowledge base").click()
    rows = page.locator("#documents tbody tr")
    expect(rows).to_have_count(20)  # a page
    expect(rows.first).to_contain_text("Note 22")  # newest first
    page.get_by_role("button", name="Older documents").click()
    expect(rows).to_have_count(23)
    expect(rows.last).to_contain_text("Note 00")
    expect(page.get_by_role("button", name="Older documents")).to_be_hidden()
    # A member reads and searches; writing is for the tenant's admins, so no upload or delete here.
    expect(page.get_by_role("button", name="Upload")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)


def test_another_tenants_knowledge_base_never_appears(console, open_console):
    _, root = console.platform_admin()
    alpha = console.tenant(root, ("admin@alpha.example.com", "tenant_admin"))
    bravo = console.tenant(root, ("admin@bravo.example.com", "tenant_admin"))
    body = {"title": "Alpha secret plans", "text": "Alpha's secret plans: Zorbium everywhere."}
    added = httpx.post(f"{console.url}/{alpha}/kb/documents", json=body, headers=root)
    with httpx.Client(base_url=console.url) as client:  # searchable in alpha before bravo looks
        assert wait_for(client, alpha, root, added.json()["id"])["status"] == "ready"  # type: ignore[arg-type]

    page = open_console()
    sign_in(page, "admin@bravo.example.com", bravo)
    page.get_by_role("link", name="Knowledge base").click()
    expect(page.get_by_text("No documents yet")).to_be_visible()
    page.get_by_label("Search", exact=True).fill("secret plans Zorbium")
    page.locator("select[name=mode]").select_option("lexical")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_text("No passage matches")).to_be_visible()
    assert "Alpha secret plans" not in page.content()
    page.goto(f"/console/#/t/{alpha}/knowledge")
    expect(page.get_by_role("alert").first).to_have_text("Not found")
    assert "Alpha secret plans" not in page.content()
