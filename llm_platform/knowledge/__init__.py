"""Per-tenant knowledge bases: collections of documents, ingested in the background into chunks with
vectors, searched by meaning (FAISS), by words (full-text search) or both (reciprocal rank fusion).

Above the model catalogue and dispatch (it embeds through them) and auth (its route dependencies), below
the chat turn, which retrieves passages through `KnowledgeBase.retrieve` to ground an answer.

- `models.py`, `schemas.py`: tables and wire shapes. `service.py`: collections and documents, each
  function filtered by the tenant's id. `intake.py` + `extraction.py`: uploads (type, size, text out of
  .txt/.md/.html/.pdf). `ingestion.py`: the background ingester (claims, leases, retries). `chunking.py`:
  chunks by the embedding model's tokens. `embedding.py`: the embedding model and its tokenizer.
  `index.py`: a tenant's FAISS index and its persistence. `lexical.py`: full-text search.
  `search.py`: `KnowledgeBase`, search and retrieval.

Where things live, and how replicas agree:
- The database holds everything (documents with their extracted text, chunks with text, position,
  content hash and vector as float32 bytes); nothing is lost with a process.
- Each process holds, per tenant, a FAISS `IndexIDMap2(IndexFlatIP)` of the normalised vectors (ids are
  chunk ids), built from the database the first time the tenant searches and saved under
  `LLMP_KNOWLEDGE_INDEX_DIR` (default data_dir/knowledge, a few seconds after changes and on shutdown),
  so a restart reads the file and catches up rather than reading every vector.
- Every change to a tenant's chunks (a document ready or deleted, a collection deleted) bumps the
  tenant's row in `kb_versions` in the same transaction. Every search reads that version first; an
  index at an older one is brought up to date incrementally (documents gone removed, documents new
  added). A change made through one replica is therefore visible on the next search on every replica,
  well within a second, at the cost of one primary-key lookup per search.
- Full-text search needs no copy in memory: a GIN index over `to_tsvector('english', text)` on Postgres,
  an FTS5 table kept by triggers on SQLite (embedded).
"""
