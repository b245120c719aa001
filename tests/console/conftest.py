"""The console in a real browser: Debian's Chromium (scripts/browser.sh) driven by Playwright, against
`llmp serve` in a process of its own on the test Postgres and Redis, with the tiny model's worker and the
tiny encoder's (the knowledge bases' embedding model).

One server and one browser serve the whole module (each starts in seconds); each test gets a fresh
browser context (no cookies) and makes tenants of its own, so tests do not see each other's data.
Screenshots go to LLMP_TEST_SCREENSHOTS when set (the README's come from there), else a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from sqlalchemy import text

from llm_platform.core.settings import Settings
from tests.conftest import PASSWORD, TABLES, TINY_ENCODER, TINY_MODEL, create_platform_admin
from tests.workers import WORKER_SECRET, ApiProcess, wait_registered, worker_env

JWT_SECRET = "console-test-secret-" + "c" * 40


@dataclass
class Console:
    """The running platform: its URL, and the API calls a test makes to set the scene."""

    url: str
    settings: Settings

    def login(self, email: str, tenant: str | None = None) -> dict[str, str]:
        form = {"username": email, "password": PASSWORD} | ({"tenant": tenant} if tenant else {})
        response = httpx.post(f"{self.url}/auth/token", data=form)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def platform_admin(self) -> tuple[str, dict[str, str]]:
        email = f"root-{uuid.uuid4().hex[:8]}@example.com"
        # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(create_platform_admin, self.settings, email).result()
        return email, self.login(email)

    def tenant(self, admin: dict[str, str], *users: tuple[str, str]) -> str:
        """A new tenant with users (email, role), made through the API as a platform admin."""
        slug = f"t-{uuid.uuid4().hex[:8]}"
        assert httpx.post(f"{self.url}/admin/tenants", json={"slug": slug}, headers=admin).status_code == 201
        for email, role in users:
            body = {"email": email, "password": PASSWORD, "role": role}
            response = httpx.post(f"{self.url}/{slug}/admin/users", json=body, headers=admin)
            assert response.status_code == 201, response.text
        return slug


@pytest.fixture(scope="module")
def console(
    database_url, redis_url, db_engine, tiny_worker, embed_worker, tmp_path_factory
) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    with db_engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    redis.Redis.from_url(redis_url).flushdb()
    data_dir = tmp_path_factory.mktemp("console-api")
    env = worker_env(
        database_url,
        redis_url,
        data_dir,
        LLMP_JWT_SECRET=JWT_SECRET,
        LLMP_PASSWORD_HASH_MEMORY_KIB="1024",
        LLMP_PASSWORD_HASH_TIME_COST="1",
        # The catalogue outlives tests and may hold other embedding models (whose workers are gone).
        LLMP_DEFAULT_EMBEDDING_MODEL=TINY_ENCODER,
    )
    api = ApiProcess(env).wait_ready()
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=data_dir,
        jwt_secret=JWT_SECRET,
        worker_secret=WORKER_SECRET,
        password_hash_memory_kib=1024,
        password_hash_time_cost=1,
    )
    try:
        wait_registered(redis_url, TINY_MODEL)
        wait_registered(redis_url, TINY_ENCODER)
        yield Console(api.url, settings)
    finally:
        api.stop()


def chromium_path() -> str:
    path = os.environ.get("LLMP_TEST_CHROMIUM") or shutil.which("chromium")
    if path is None:
        message = "Chromium is not installed; run scripts/browser.sh (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Launched by path: Playwright's own browsers come from a CDN. No sandbox: tests may run as root.
    launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
    yield launched
    launched.close()


@pytest.fixture
def open_console(browser: Browser, console: Console) -> Iterator:  # type: ignore[type-arg]
    """Opens a fresh browser (no cookies, no storage) on the console: `open_console(width=...)`."""
    contexts = []

    def opened(width: int = 1280, height: int = 900) -> Page:
        context = browser.new_context(base_url=console.url, viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/console/")
        return page

    yield opened
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    folder = Path(os.environ.get("LLMP_TEST_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(
    page: Page, email: str, tenant: str | None = None, password: str = PASSWORD, *, ok: bool = True
) -> None:
    """Fills in the sign-in form and sends it; with `ok`, waits until signed in."""
    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_label("Tenant").fill(tenant or "")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    if ok:
        page.get_by_role("button", name="Sign out").wait_for()
