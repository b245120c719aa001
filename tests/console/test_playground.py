"""The chat playground in a real browser, on the tiny model's worker: an answer streams in (text shows
while the answer is still coming), then its usage, time to first token, latency and cache outcome; the
conversation is stored and resumed; a model's output is text, never markup."""

from __future__ import annotations

import re
import time

import httpx
from playwright.sync_api import expect

from tests.conftest import TINY_MODEL
from tests.console.conftest import sign_in

# Records, on every change to the playground's messages, how much answer text shows and whether the
# answer is still in progress (aria-busy): the proof that tokens showed before the answer ended.
WATCH_ANSWER = """() => {
  window.answerSeen = [];
  new MutationObserver(() => {
    const answer = document.querySelector('.message.assistant:last-child');
    if (answer) window.answerSeen.push({chars: answer.querySelector('.body').textContent.length,
                                        busy: answer.hasAttribute('aria-busy')});
  }).observe(document.querySelector('.messages'), {subtree: true, childList: true, characterData: true,
                                                   attributes: true});
}"""


def test_a_member_streams_an_answer_and_sees_its_usage(console, open_console, screenshots):
    _, root = console.platform_admin()
    slug = console.tenant(root, ("member@a.example.com", "member"))
    page = open_console()
    sign_in(page, "member@a.example.com", slug)
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    page.get_by_label("Model").select_option(TINY_MODEL)  # the catalogue's other models have no worker here

    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Max tokens").fill("48")
    page.evaluate(WATCH_ANSWER)
    page.get_by_label("Message").fill("<b>What</b> is the capital of France?")
    page.get_by_role("button", name="Send").click()

    answer = page.locator(".message.assistant").last
    stats = answer.locator(".stats")
    expect(stats).to_contain_text(re.compile(r"\d+ prompt \+ \d+ completion tokens"))
    expect(stats).to_contain_text(re.compile(r"first token \d+ ms"))
    expect(stats).to_contain_text(re.compile(r"total \d+ ms"))
    expect(stats).to_contain_text("cache miss")
    expect(stats).to_contain_text(f"model {TINY_MODEL}")
    seen = page.evaluate("window.answerSeen")
    assert any(s["chars"] > 0 and s["busy"] for s in seen), seen  # text before the answer had ended
    assert answer.locator(".body").inner_text().strip() != ""
    # The prompt's markup is shown as typed, not rendered.
    user = page.locator(".message.user").last
    expect(user).to_have_text("<b>What</b> is the capital of France?")
    assert user.locator("b").count() == 0
    page.screenshot(path=screenshots / "playground.png", full_page=True)

    # Stored: a new conversation, then the first one resumed.
    first = page.locator(".conversations li button").first
    expect(first).to_have_text("<b>What</b> is the capital of France?")
    first_answer = answer.locator(".body").inner_text()
    page.get_by_role("button", name="New conversation").click()
    expect(page.locator(".message")).to_have_count(0)

    # The same question again, deterministic: the platform answers from its cache, and says so.
    page.get_by_label("Message").fill("<b>What</b> is the capital of France?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.assistant .stats")).to_contain_text("cache hit")
    assert page.locator(".message.assistant .body").inner_text() == first_answer

    page.locator(".conversations li button").last.click()
    expect(page.locator(".message")).to_have_count(2)
    expect(page.locator(".message.assistant .body")).to_have_text(first_answer)


def test_the_playground_works_on_a_narrow_window(console, open_console, screenshots):
    _, root = console.platform_admin()
    slug = console.tenant(root, ("narrow@a.example.com", "tenant_admin"))
    page = open_console(width=420, height=900)
    sign_in(page, "narrow@a.example.com", slug)
    page.get_by_label("Model").select_option(TINY_MODEL)
    page.get_by_label("Max tokens").fill("8")
    page.get_by_label("Message").fill("Hello")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.assistant .stats")).to_contain_text("completion tokens")
    # Nothing wider than the window: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=screenshots / "playground-narrow.png", full_page=True)


def test_older_conversations_load_a_page_at_a_time(console, open_console):
    _, root = console.platform_admin()
    slug = console.tenant(root, ("pager@a.example.com", "member"))
    member = console.login("pager@a.example.com", slug)
    with httpx.Client(base_url=console.url, headers=member) as client:
        for n in range(21):  # a page holds 20
            created = client.post(f"/{slug}/conversations", json={"title": f"Conversation {n:02d}"})
            assert created.status_code == 201, created.text

    page = open_console()
    sign_in(page, "pager@a.example.com", slug)
    conversations = page.locator(".conversations li button")
    older = page.get_by_role("button", name="Older conversations")
    expect(conversations).to_have_count(20)
    expect(conversations.first).to_have_text("Conversation 20")  # the most recent first
    expect(page.get_by_role("button", name="Conversation 00")).to_have_count(0)
    older.click()
    expect(conversations).to_have_count(21)
    expect(conversations.last).to_have_text("Conversation 00")
    expect(older).to_be_hidden()
    # The oldest resumes like any other (it has no messages yet) and is marked as the current one.
    conversations.last.click()
    expect(conversations.last).not_to_have_class(re.compile("outline"))
    expect(page.locator(".message")).to_have_count(0)


STOP_AT_FIRST_TEXT = """() => {
  new MutationObserver((_, observer) => {
    const body = document.querySelector('.message.assistant:last-child .body');
    if (body && body.textContent.length > 0) {
      observer.disconnect();
      [...document.querySelectorAll('button')].find((b) => b.textContent === 'Stop').click();
    }
  }).observe(document.querySelector('.messages'), {subtree: true, childList: true, characterData: true});
}"""
LONG_PROMPT = "Tell me a very long story."
LONG_ANSWER = 440  # tokens: most of what the tiny model's 512-token context leaves after the prompt


def test_stop_cuts_an_answer_short_and_only_its_tokens_are_billed(console, open_console):
    _, root = console.platform_admin()
    slug = console.tenant(root, ("stopper@a.example.com", "member"))
    # No cache: the answer asked below must be generated each time, not replayed.
    assert (
        httpx.patch(
            f"{console.url}/{slug}/admin/settings", json={"cache_enabled": False}, headers=root
        ).status_code
        == 200
    )
    member = console.login("stopper@a.example.com", slug)
    ask = {"prompt": LONG_PROMPT, "model": TINY_MODEL, "temperature": 0, "max_tokens": LONG_ANSWER}
    # Left alone, this (greedy, so the same each time) answer runs to the token limit.
    full = httpx.post(f"{console.url}/{slug}/chat", json=ask, headers=member, timeout=60)
    assert full.status_code == 200, full.text
    full = full.json()
    assert full["finish_reason"] == "length" and full["usage"]["completion_tokens"] == LONG_ANSWER, full
    billed_before = used_tokens(console, slug, member)

    page = open_console()
    sign_in(page, "stopper@a.example.com", slug)
    page.get_by_label("Model").select_option(TINY_MODEL)
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Max tokens").fill(str(LONG_ANSWER))
    page.get_by_label("Message").fill(LONG_PROMPT)
    # Stop is pressed as soon as the answer's first text shows: the whole answer takes the tiny model
    # well under a second, less than a click from the test process could be relied on to beat.
    page.evaluate(STOP_AT_FIRST_TEXT)
    page.get_by_role("button", name="Send").click()
    answer = page.locator(".message.assistant").last
    expect(answer.locator(".stopped")).to_contain_text("Stopped")
    expect(answer).not_to_have_attribute("aria-busy", "")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    assert "completion tokens" not in answer.locator(".stats").inner_text()  # it never finished
    shown = answer.locator(".body").text_content() or ""
    assert 0 < len(shown) < len(full["response"]) and full["response"].startswith(shown)

    # Billed for what was generated before the stop: some tokens, fewer than the whole answer's.
    deadline = time.monotonic() + 10
    while (billed := used_tokens(console, slug, member) - billed_before) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert 0 < billed < LONG_ANSWER, billed


def used_tokens(console, slug: str, headers: dict[str, str]) -> int:  # type: ignore[no-untyped-def]
    report = httpx.get(f"{console.url}/{slug}/usage", headers=headers).json()
    return report["totals"]["completion_tokens"]
