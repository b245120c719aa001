"""Text that can be written out as UTF-8 (no lone UTF-16 surrogates) and stored (no NUL).

JSON may escape a lone surrogate (`"\\ud800"`), and Python decodes it into a `str` that no UTF-8 encoder
accepts: a token count, a cache key, a database row or a response body would then fail far from the
input. So request bodies refuse such strings where they are validated, and whatever echoes client input
(error messages) makes it printable first.

Postgres text cannot hold NUL (U+0000) either. What a client names (a tenant, a title) is refused with it;
what the platform must keep whatever it holds (a prompt, a model's answer, a path in the audit log) is
stored with each NUL replaced. A model's answer has its NULs replaced as it streams, so that the client
reads what the conversation keeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
    _refuse_strings(value, _unstorable, NOT_STORABLE)
    return value


def _unstorable(text: str) -> bool:
    return "\x00" in text or has_lone_surrogate(text)


def _reject_within(value: Any) -> Any:
    _refuse_strings(value, has_lone_surrogate, LONE_SURROGATE)
    return value


def _refuse_strings(value: Any, refused: Callable[[str], bool], reason: str) -> None:
    """Raises ValueError(reason) if any string in `value` is `refused`: JSON values (keys included),
    collections and models, however nested."""
    if isinstance(value, str):
        if refused(value):
            raise ValueError(reason)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_strings(key, refused, reason)
            _refuse_strings(item, refused, reason)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _refuse_strings(item, refused, reason)
    elif isinstance(value, BaseModel):
        _refuse_strings(value.__dict__, refused, reason)


# On the field, not inside a union's members: the error's location is then the field as the client
# wrote it (`messages.0.content`), not a union branch (`messages.0.content.list[TextPart].0.text`).
NO_LONE_SURROGATES = AfterValidator(_reject_within)

Text = Annotated[str, NO_LONE_SURROGATES]
"""A string field of a request body."""

JsonValue = Annotated[Any, NO_LONE_SURROGATES]
"""A free-form field of a request body (a dict, a list, ...): every string in it is checked."""
