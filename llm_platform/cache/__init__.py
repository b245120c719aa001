"""The response cache: a deterministic request's answer, kept per tenant (the tenant is part of the key)
in Redis, or in memory when the platform runs without Redis; what a tenant's policy lets it cache."""
