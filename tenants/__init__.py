"""The tenant domain: tenants, their users and roles, API keys (and the stored form of credentials),
limits and settings, the per-process caches of them the request path reads, and the usage ledger.

It stands on the kernel alone; the admin API over it is in the app shell (llm_platform/routes/).
"""
