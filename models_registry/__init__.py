"""Models and where they run. Two processes' code, kept apart:

- the API process's: the catalogue (`models.py`, `service.py`, `schemas.py`: which models exist, how they
  are served, their default sampling, and which a tenant may use), the worker registry (`registry.py`:
  the live workers, read from Redis or reported to the API in embedded mode), dispatch (`dispatch.py`: a
  generation to the least-loaded worker, streamed back) and the `openai` backend (`upstream.py`);
- the worker process's: `worker/` (the worker app, its heartbeat, and `protocol.py`, what both processes
  agree on) and `engine/` (continuous batching over transformers, torch and transformers only);
- where a model's weights are on this machine (`sources.py`, `bundled.py`), for the worker.

Import-linter's contracts in pyproject.toml keep the worker process from importing the API's code.
"""
