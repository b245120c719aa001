"""Per-tenant and per-key admission: requests/min, tokens/min (reserved, then settled), concurrency."""
