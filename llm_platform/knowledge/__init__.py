"""Per-tenant knowledge bases: collections of documents, ingested in the background into chunks with
vectors, searched by meaning (FAISS), by words (full-text search) or both (reciprocal rank fusion).

Above the model catalogue and dispatch (it embeds through them) and auth (its route dependencies), below
the chat turn, which retrieves passages through `KnowledgeBase.retrieve` to ground an answer.

- `models.py`, `schemas.py`: tables and wire shapes. `service.py`: collections and documents, each
  function filtered by the tenant's id. `intake.py` + `extraction.py`: uploads (type, size, text out of
  .txt/.md/.html/.pdf; a PDF in a child process stopped at a time limit, `extraction_process.py`).
  `ingestion.py`: the background ingester (claims, leases, retries). `chunking.py`: chunks by the
  embedding model's tokens. `embedding.py`: the embedding model and its tokenizer.
  `index.py`: a tenant's chunks, FAISS for meaning and `lexical.py` (tantivy, BM25) for words;
  `store.py`: where they are kept between processes. `search.py`: `KnowledgeBase`, search and retrieval.

Where things live, and how replicas agree:
- The database holds everything (documents with their extracted text, chunks with text, position,
  content hash and vector as float32 bytes); nothing is lost with a process.
- Each process holds, per tenant, an index made the first time the tenant searches: a FAISS index of
  the normalised vectors as float16 (ids are chunk ids) in memory, and a tantivy full-text index of the
  texts on disk, in a directory the process owns under LLMP_KNOWLEDGE_INDEX_DIR (`store.py`). When the
  process stops (or drops the index from memory past LLMP_KNOWLEDGE_MAX_INDEXED_CHUNKS, least recently
  searched first) it saves the FAISS part and what the index holds beside it; the next process to need
  the tenant's index loads that and catches up from the database, instead of reading and indexing every
  chunk again (seconds at 100k chunks; bench/RESULTS.md). The files are a cache: the database decides.
- Every change to a tenant's chunks (a document ready or deleted, a collection deleted) bumps the
  tenant's row in `kb_versions` in the same transaction. Every search reads that version first; an
  index at an older one is brought up to date incrementally (documents gone removed, documents new
  added). A change made through one replica is therefore visible on the next search on every replica,
  well within a second, at the cost of one primary-key lookup per search.
"""
