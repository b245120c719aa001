"""The refresh token as a cookie, for browsers (the console): script on a page can never read it, so an
injected script cannot take a session away with it.

`HttpOnly`, `SameSite=Strict`, `Secure` when the request came over https, and `Path=/auth`: sent only to
the endpoints that accept it (refresh, logout), never to the API's other paths or the console's pages.
Those endpoints read it only from a same-origin request that carries `X-Requested-With`: a cross-site
form cannot set that header, and a cross-site script cannot without a CORS preflight the platform refuses.
SameSite=Strict already keeps the cookie off cross-site requests; this holds where a browser ignores it.
"""

from __future__ import annotations

from fastapi import Request, Response

from llm_platform.core.errors import Forbidden, Unauthorized

REFRESH_COOKIE = "llmp_refresh"
REFRESH_COOKIE_PATH = "/auth"
CSRF_HEADER = "X-Requested-With"


def set_refresh_cookie(response: Response, request: Request, token: str, max_age_s: int) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=max_age_s,
        path=REFRESH_COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_refresh_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        REFRESH_COOKIE,
        path=REFRESH_COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def refresh_token_of(request: Request, in_body: str | None) -> tuple[str, bool]:
    """The refresh token presented: the body's (any client), else the cookie's (a browser), and whether it
    came from the cookie. A cookie is accepted only from a same-origin request (see the module's doc)."""
    if in_body is not None:
        return in_body, False
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise Unauthorized("No refresh token: send `refresh_token` in the body, or sign in again")
    origin = request.headers.get("origin")
    own_origin = f"{request.url.scheme}://{request.url.netloc}"
    if not request.headers.get(CSRF_HEADER) or (origin is not None and origin != own_origin):
        raise Forbidden(
            f"The refresh cookie is accepted only from a same-origin request with {CSRF_HEADER}",
            code="csrf_check_failed",
        )
    return token, True
