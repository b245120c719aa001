"""Serves the console's files at /console, each with the console's security headers.

The pages are static (no server-side templates): `static/index.html` loads `static/js/app.js`, which
routes on the URL's fragment and calls the API with fetch. The vendored assets under `static/vendor/`
come from npm, pinned (scripts/console_assets.sh).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_PATH = "/console"
STATIC_DIR = Path(__file__).parent / "static"

# No inline script or style at all, nothing from another origin: a string that slipped into the page as
# markup can neither run nor load anything. Pico.css draws its icons as data: SVG images.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # Revalidate every time: after an upgrade a browser must not mix old and new modules.
    (b"cache-control", b"no-cache"),
)


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + list(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)


def install_console(app: Starlette) -> None:
    """Mounts the console; `/console` itself redirects to its index page."""

    async def to_index(request):  # type: ignore[no-untyped-def]
        return RedirectResponse(request.scope.get("root_path", "") + CONSOLE_PATH + "/")

    app.add_route(CONSOLE_PATH, to_index, include_in_schema=False)
    files = StaticFiles(directory=STATIC_DIR, html=True)
    app.mount(CONSOLE_PATH, _SecurityHeaders(files), name="console")
