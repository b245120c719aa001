"""The chat turn, the top domain: it uses every floor below it (auth, limits, cache, audit, the model
catalogue and dispatch, tenants) and nothing imports it but the app shell.

- `turn.py`: the one flow every front door calls (recall, resolve, look up the cache, admit, dispatch or
  replay); `generation.py` resolves the model and parameters (`sampling.py`: their single source);
  `stream.py` streams the answer; `settle.py` is what happens when it ends (audit, usage, conversation,
  limits, cache); `conversations.py` stores conversations.
- The front doors translate their protocol to a `TurnRequest` and back: `openai_router.py`
  (`/v1/chat/completions`, wire models in `openai_protocol.py`), `router.py` (`/{tenant}/chat`, wire
  models in `schemas.py`), `ws_router.py` (`WS /{tenant}/ws/chat`); `dependencies.py` gives them the turn
  and the caller; `conversations_router.py` serves stored conversations.
"""
