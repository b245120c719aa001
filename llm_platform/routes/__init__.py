"""The HTTP routes of the admin and account APIs, in the app shell: thin wiring that authorizes (auth's
dependencies), calls a domain's service and returns its schema. One module per API: auth (`/auth`),
tenants (`/admin/tenants`, `/{tenant}/admin/...`), usage, audit, models (the catalogue) and workers (the
embedded worker registry). Request and response schemas stay in their domains; the model endpoints'
routes are chat's own (llm_platform/chat)."""
