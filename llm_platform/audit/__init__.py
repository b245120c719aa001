"""The audit log: one row per API action (every request that changed something), chained per tenant by
hashes. The middleware writes a request's row when its response has gone out, from what the request's
AuditContext was told (who, which tenant, model, tokens); the writer gets rows into the database off the
request path, the service reads and prunes them, and the chain verifies them.

It stands just above the kernel, so that every domain above it may tell it what it did.
"""
