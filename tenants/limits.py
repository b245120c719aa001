"""What a tenant's or an API key's limits mean, as the rate limiter enforces them: requests and tokens per
sliding minute, requests in flight, and tokens per UTC month and day. None means unlimited.

They are the tenant domain's: the tenant and key rows hold them (tenants.models.LimitColumns), the tenant
policy and the caller's principal carry them, and the limiters (llm_platform.ratelimit) count against them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenants.models import LimitColumns


@dataclass(frozen=True)
class Limits:
    """None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_requests: int | None = None
    monthly_tokens: int | None = None
    daily_tokens: int | None = None

    @classmethod
    def of(cls, row: LimitColumns | None) -> Limits:
        """A tenant's or an API key's row; None (no row): unlimited."""
        if row is None:
            return cls()
        return cls(
            requests_per_minute=row.requests_per_minute,
            tokens_per_minute=row.tokens_per_minute,
            concurrent_requests=row.concurrent_requests,
            monthly_tokens=row.monthly_token_quota,
            daily_tokens=row.daily_token_quota,
        )
