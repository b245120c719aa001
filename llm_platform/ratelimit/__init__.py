"""Rate limits and quotas of the model endpoints: per-tenant and per-key admission (requests/min,
tokens/min reserved then settled, concurrency, monthly and daily token quotas), the Redis and in-process
limiters that count them, the meter that admits and settles a request, and the `x-ratelimit-*` headers.

What a limit means is the tenant domain's (tenants.limits); the login throttle (llm_platform.auth) counts
on the same limiters.
"""
