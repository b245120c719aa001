"""The platform's API process, in floors that go one way; each imports only the floors below it (the
layers contract in pyproject.toml, checked by `lint-imports`). Bottom to top:

1. `core/`: the kernel (settings, database, Redis, errors and their handlers, ids, middleware, logging).
2. `audit/`: the audit log; every floor above may record what it did.
3. the top-level package `tenants`: tenants, users, API keys, limits, settings, the usage ledger.
4. the top-level package `models_registry`: the model catalogue, the worker registry, dispatch; and apart,
   the worker process (`models_registry/worker/`, `models_registry/engine/`).
5. `ratelimit/`: admission, the limiters and the meter.
6. `auth/`: who is calling (credentials, sessions, login) and what it may do.
7. `cache/`: the response cache.
8. `chat/`: the chat turn and its front doors (OpenAI API, tenant REST, WebSocket).
9. the app shell, imported by nothing: `app`, `state`, `routes/`, `health`, `docs`, `cli`, `workers`,
   `tables`.
"""
