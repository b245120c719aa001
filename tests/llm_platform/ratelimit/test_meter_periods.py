"""The quota periods a request falls in (ratelimit/meter.py's periods_at): UTC months and days, named
for their counters, and the instant each ends. Pure logic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llm_platform.ratelimit.admission import Periods
from llm_platform.ratelimit.meter import periods_at


def ms(*moment: int) -> int:
    return int(datetime(*moment, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("moment", "periods"),
    [
        (
            datetime(2026, 11, 23, 12, 30, tzinfo=UTC),
            Periods("2026-11", "2026-11-23", ms(2026, 12, 1), ms(2026, 11, 24)),
        ),
        (  # the first instant of a month is in it
            datetime(2026, 11, 1, tzinfo=UTC),
            Periods("2026-11", "2026-11-01", ms(2026, 12, 1), ms(2026, 11, 2)),
        ),
        (  # the last millisecond of a month is still in it
            datetime(2026, 11, 30, 23, 59, 59, 999_000, tzinfo=UTC),
            Periods("2026-11", "2026-11-30", ms(2026, 12, 1), ms(2026, 12, 1)),
        ),
        (  # December ends in the next year
            datetime(2026, 12, 31, 18, tzinfo=UTC),
            Periods("2026-12", "2026-12-31", ms(2027, 1, 1), ms(2027, 1, 1)),
        ),
        (  # a leap February has 29 days
            datetime(2028, 2, 29, 6, tzinfo=UTC),
            Periods("2028-02", "2028-02-29", ms(2028, 3, 1), ms(2028, 3, 1)),
        ),
        (
            datetime(2027, 2, 28, 6, tzinfo=UTC),
            Periods("2027-02", "2027-02-28", ms(2027, 3, 1), ms(2027, 3, 1)),
        ),
        (  # a 31-day month
            datetime(2027, 1, 31, tzinfo=UTC),
            Periods("2027-01", "2027-01-31", ms(2027, 2, 1), ms(2027, 2, 1)),
        ),
    ],
)
def test_the_month_and_day_a_request_falls_in_and_when_they_end(moment, periods):
    assert periods_at(moment) == periods


def test_every_moment_of_a_day_falls_in_the_same_periods():
    assert periods_at(datetime(2026, 11, 23, tzinfo=UTC)) == periods_at(
        datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC)
    )
