"""The bundled all-MiniLM-L6-v2, end to end: served from its package's files by a worker (registered by
the migration), reached by the official `openai` client unchanged, and computing what
sentence-transformers defines (mean pooling over the attention mask, then L2 normalisation)."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

from models_registry.bundled import resolve_bundled
from models_registry.engine.embedder import Embedder
from models_registry.engine.loader import cpu_has_bf16
from tests.conftest import PlatformHelper
from tests.workers import WorkerProcess, wait_registered, worker_env

MINILM = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def minilm_worker(database_url, redis_url, tmp_path_factory):  # type: ignore[no-untyped-def]
    worker = WorkerProcess(MINILM, worker_env(database_url, redis_url, tmp_path_factory.mktemp("minilm")))
    yield worker.wait_ready(timeout_s=120)
    worker.stop()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # the vectors are normalised


def test_vectors_are_sentence_transformers_and_mean_what_they_say(tmp_path):
    embedder = Embedder.load(resolve_bundled(f"bundled:{MINILM}", tmp_path))
    assert (embedder.dimensions, embedder.max_tokens) == (384, 256)  # its sentence_bert_config.json
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply."]
    together, _ = embedder.embed(texts)
    alone = [embedder.embed([text])[0][0] for text in texts]
    for batched, single in zip(together, alone, strict=True):
        assert math.isclose(math.fsum(x * x for x in batched), 1.0, abs_tol=1e-5)
        assert batched == pytest.approx(single, abs=1e-5)  # padding does not change a vector
    assert embedder.embed(texts)[0] == together  # deterministic
    assert cosine(together[0], together[1]) > 0.6 > 0.2 > cosine(together[0], together[2])


def test_bfloat16_vectors_stay_close_to_float32(tmp_path):
    path = resolve_bundled(f"bundled:{MINILM}", tmp_path)
    exact, fast = Embedder.load(path), Embedder.load(path, precision="bfloat16")
    assert (exact.autocast, fast.autocast) == (False, True)
    texts = [
        "The pump's relief valve RV-7731 opens at 12 bar.",
        "Quarterly revenue grew by four percent, driven by services.",
        "A man is eating a piece of bread." * 20,  # a long input beside short ones: padding
    ]
    expected, _ = exact.embed(texts)
    batched, _ = fast.embed(texts)
    alone = [fast.embed([text])[0][0] for text in texts]
    for want, got, single in zip(expected, batched, alone, strict=True):
        assert cosine(want, got) > 0.999 and cosine(want, single) > 0.999
    # Similarities between texts, what retrieval ranks by, barely move.
    for a in range(len(texts)):
        similarities = [cosine(batched[a], other) for other in batched]
        assert similarities == pytest.approx([cosine(expected[a], other) for other in expected], abs=5e-3)
    assert Embedder.load(path, precision="auto").autocast == cpu_has_bf16()


def test_the_openai_client_embeds_unchanged(minilm_worker, live_api, settings, redis_url):
    wait_registered(redis_url, MINILM)
    with httpx.Client(base_url=live_api) as http:
        helper = PlatformHelper(http, settings)  # type: ignore[arg-type]
        tenant = helper.create_tenant()
        key = helper.create_key(tenant)["key"]
        default = http.post(
            f"/{tenant.slug}/embeddings", json={"input": "hello"}, headers={"Authorization": f"Bearer {key}"}
        )
    client = openai.OpenAI(base_url=f"{live_api}/v1", api_key=key, max_retries=0)
    texts = ["The cat sits on the mat.", "Ein Hund läuft im Park."]
    as_floats = client.embeddings.create(model=MINILM, input=texts, encoding_format="float")
    as_default = client.embeddings.create(model=MINILM, input=texts)  # the client asks for base64
    assert as_floats.model == MINILM and len(as_floats.data) == 2
    assert as_floats.usage.prompt_tokens == as_floats.usage.total_tokens > 0
    for floats, decoded in zip(as_floats.data, as_default.data, strict=True):
        assert len(floats.embedding) == 384
        assert decoded.embedding == pytest.approx(floats.embedding, abs=1e-7)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MINILM, input="x", dimensions=256)
    # /{tenant}/embeddings without a model: the platform's default embedding model, this one.
    assert default.status_code == 200 and default.json()["model"] == MINILM
