"""Embeddings: vectors of texts (or token ids) from the catalogue's embedding models, metered, cached,
audited and billed like a chat turn.

- `protocol.py`: OpenAI's wire shapes for /v1/embeddings (and /{tenant}/embeddings, whose model is
  optional);
- `flow.py`: the one flow, check → cache → admit → dispatch → settle, whichever door it came through;
- `dependencies.py`, `router.py`: the front doors.
"""
