"""What runs in a model worker process: the worker app (`app.py`), its heartbeat to the registry and its
watch on the parent server; and `protocol.py`, what the API process and the workers agree on. None of it
imports the API process's code (pyproject.toml's contract)."""
