"""Wire shapes of the authentication endpoints."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from llm_platform.core.request_body import RequestBody


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str | None = Field(description="null when it was set as an HttpOnly cookie instead")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the access token expires")


class RefreshRequest(RequestBody):
    refresh_token: str = Field(min_length=1, max_length=512)


class PrincipalOut(BaseModel):
    kind: Literal["user", "api_key"]
    id: uuid.UUID
    tenant: str | None
    role: str | None = None
    email: str | None = None
    scopes: list[str] | None = None
    api_key_prefix: str | None = None
