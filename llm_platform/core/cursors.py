"""Keyset cursors for lists read newest first. A cursor names the last row of a page by its timestamp and
id (the tie-breaker, so rows with equal timestamps keep one order); the next page starts right after it:
an index range scan, no OFFSET, so a deep page costs what the first one does and a row added meanwhile
neither repeats nor skips another. The cursor is opaque to clients; one they made up answers 400."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, tuple_

from llm_platform.core.errors import BadRequest

Id = TypeVar("Id")
Row = TypeVar("Row")


def encode(at: datetime, row_id: object) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode(cursor: str, id_type: Callable[[str], Id]) -> tuple[datetime, Id]:
    """The (timestamp, id) a cursor names; `id_type` parses the id (`int`, `uuid.UUID`)."""
    try:
        at_text, id_text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None:  # we only ever write aware ones
            raise ValueError("naive timestamp")
        return at.astimezone(UTC), id_type(id_text)
    except (ValueError, OverflowError) as exc:  # binascii and Unicode errors are ValueErrors
        raise BadRequest("Invalid cursor", code="invalid_cursor", param="cursor") from exc


def older_than(
    at_column: Any, id_column: Any, cursor: str, id_type: Callable[[str], Id]
) -> ColumnElement[bool]:
    """The rows after the cursor's in (timestamp, id) descending order."""
    at, row_id = decode(cursor, id_type)
    return tuple_(at_column, id_column) < tuple_(at, row_id)


def cut(
    rows: Sequence[Row], limit: int, key: Callable[[Row], tuple[datetime, object]]
) -> tuple[list[Row], str | None]:
    """A page from up to `limit + 1` rows (the extra one only says there is more) and the cursor of the
    next page, or None on the last."""
    page = list(rows[:limit])
    return page, (encode(*key(page[-1])) if len(rows) > limit else None)
