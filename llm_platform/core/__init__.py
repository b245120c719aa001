"""The kernel every package of the platform stands on: settings, the database and Redis clients, errors
and their one shape, ids, the request id and body-size middleware, logging, migrations, and the small
pieces of request validation every domain shares. It imports nothing of ours above it (import-linter's
contracts in pyproject.toml hold it to that)."""
