"""The kernel every package of the platform stands on: settings, the database and Redis clients, errors,
their one shape and the handlers that answer with it (and the error responses of the OpenAPI document),
ids, the request id and body-size middleware, logging, migrations, and the small pieces of request
validation every domain shares. SessionDep and SettingsDep hand a route a database session and the
settings. It imports nothing of ours above it (import-linter's contracts in pyproject.toml hold it to
that)."""
