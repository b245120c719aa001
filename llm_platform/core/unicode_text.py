"""Text that can be written out as UTF-8 (no lone UTF-16 surrogates) and stored (no NUL).

JSON may escape a lone surrogate (`"\\ud800"`), and Python decodes it into a `str` that no UTF-8 encoder
accepts: a token count, a cache key, a database row or a response body would then fail far from the
input. So request bodies refuse such strings where they are validated, and whatever echoes client input
(error messages) makes it printable first.

Postgres text cannot hold NUL (U+0000) either. What a client names (a tenant, a title) is refused with it;
what the platform must keep whatever it holds (a prompt, a model's answer, a path in the audit log) is
stored with each NUL replaced.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel

_SURROGATE = re.compile("[\ud800-\udfff]")
LONE_SURROGATE = "must be valid Unicode text (it contains a lone UTF-16 surrogate)"


def has_lone_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def printable(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD, for echoing client input safely."""
    return _SURROGATE.sub("\ufffd", text) if has_lone_surrogate(text) else text


def storable(text: str) -> str:
    """`text` as a database text column takes it: each NUL replaced by U+FFFD."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


NOT_STORABLE = "must be valid Unicode text without NUL characters"


def refuse_unstorable(value: Any) -> Any:
    """A request body's field: a string in it with a lone surrogate or a NUL is refused."""
    if isinstance(value, str):
        if "\x00" in value or has_lone_surrogate(value):
            raise ValueError(NOT_STORABLE)
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_unstorable(key)
            refuse_unstorable(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            refuse_unstorable(item)
    return value


def _reject_within(value: Any) -> Any:
    """Every string in a validated value: JSON values (keys included) and models."""
    if isinstance(value, str):
        if has_lone_surrogate(value):
            raise ValueError(LONE_SURROGATE)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_within(key)
            _reject_within(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_within(item)
    elif isinstance(value, BaseModel):
        _reject_within(value.__dict__)
    return value


# On the field, not inside a union's members: the error's location is then the field as the client
# wrote it (`messages.0.content`), not a union branch (`messages.0.content.list[TextPart].0.text`).
NO_LONE_SURROGATES = AfterValidator(_reject_within)

Text = Annotated[str, NO_LONE_SURROGATES]
"""A string field of a request body."""

JsonValue = Annotated[Any, NO_LONE_SURROGATES]
"""A free-form field of a request body (a dict, a list, ...): every string in it is checked."""
