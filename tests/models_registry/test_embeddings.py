"""Embedding models: the embedder, and a worker serving it through the internal API and dispatch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from models_registry.engine import bert
from models_registry.engine.embedder import Embedder
from models_registry.engine.params import ContextLengthExceeded, InvalidParameter
from models_registry.worker.protocol import EmbedRequest
from tests.metrics import scrape
from tests.responses import assert_error, bearer
from tests.workers import WORKER_SECRET, wait_registered

TEXTS = ["the cat sat", "the dog", "a b c d e f g"]


def test_vectors_are_normalized_and_do_not_depend_on_batching(encoder_dir):
    embedder = Embedder.load(encoder_dir)
    together, tokens = embedder.embed(TEXTS)
    alone = [embedder.embed([text])[0][0] for text in TEXTS]
    assert torch.allclose(torch.tensor(together), torch.tensor(alone), atol=1e-5)
    assert torch.allclose(torch.tensor(together).norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5)
    assert tokens == sum(embedder.count_tokens(TEXTS))
    raw, _ = embedder.embed(TEXTS[:1], normalize=False)
    assert abs(torch.tensor(raw).norm().item() - 1.0) > 1e-3


def test_packed_weights_give_the_vectors_of_the_plain_model(encoder_dir):
    plain = Embedder.load(encoder_dir, prepack=False)
    packed = Embedder.load(encoder_dir)
    assert (plain.packed, packed.packed) == (False, True)
    expected = torch.tensor(plain.embed(TEXTS)[0])
    assert torch.allclose(torch.tensor(packed.embed(TEXTS)[0]), expected, atol=1e-5)
    # Under bf16 autocast the weights are packed in bf16: the vectors autocast alone gives, to bf16's
    # rounding (both stay near float32's).
    autocast = Embedder.load(encoder_dir, precision="bfloat16", prepack=False)
    packed_bf16 = Embedder.load(encoder_dir, precision="bfloat16")
    fast, slow = torch.tensor(packed_bf16.embed(TEXTS)[0]), torch.tensor(autocast.embed(TEXTS)[0])
    assert torch.nn.functional.cosine_similarity(fast, slow).min() > 0.999
    assert torch.nn.functional.cosine_similarity(fast, expected).min() > 0.99


@pytest.mark.parametrize(
    ("precision", "prepack"), [("float32", False), ("float32", True), ("bfloat16", True)]
)
def test_the_written_out_bert_forward_gives_transformers_vectors(encoder_dir, precision, prepack):
    """bert.py's forward is transformers' arithmetic in its order: the same vectors, padding and all."""
    embedder = Embedder.load(encoder_dir, precision=precision, prepack=prepack)
    assert embedder.bert is not None
    texts = [*TEXTS, "the cat sat " * 5]
    written = embedder.embed(texts)[0]
    embedder.bert = None  # transformers' own forward
    assert embedder.embed(texts)[0] == written


def test_other_encoders_keep_the_transformers_forward(encoder_dir):
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(encoder_dir)
    assert bert.supports(BertModel(config))
    for change in ({"hidden_act": "relu"}, {"is_decoder": True}):
        assert not bert.supports(BertModel(BertConfig.from_pretrained(encoder_dir, **change)))


def test_a_small_forward_runs_on_one_thread_and_a_large_one_on_all(encoder_dir):
    """One short query on one thread (a second one only spins, taking a core the API needs), a batch
    on all of them; the vectors do not depend on it."""
    embedder = Embedder.load(encoder_dir)
    before = torch.get_num_threads()
    embedder.threads = 2
    try:
        alone = embedder.embed(["the cat sat"])[0]
        assert torch.get_num_threads() == 1
        batch = ["the cat sat", *["a b c d e f g " * 8] * 4]  # 5 inputs of ~58 tokens: > 128 padded
        together = embedder.embed(batch)[0]
        assert torch.get_num_threads() == 2
        assert torch.allclose(torch.tensor(together[0]), torch.tensor(alone[0]), atol=1e-5)
    finally:
        torch.set_num_threads(before)


def test_inputs_longer_than_the_model_reads_are_refused(encoder_dir):
    embedder = Embedder.load(encoder_dir)
    with pytest.raises(ContextLengthExceeded) as refused:
        embedder.embed(["a " * 200])
    assert refused.value.context_length == 64


def test_worker_embeds_and_dispatch_reaches_it(embed_worker, client, redis_url, encoder_dir):
    headers = {"Authorization": f"Bearer {WORKER_SECRET}"}
    body = {"request_id": "e1", "tenant": "t", "model": "tiny-encoder", "inputs": TEXTS}
    direct = httpx.post(f"{embed_worker.url}/internal/embed", json=body, headers=headers)
    assert direct.status_code == 200, direct.text
    vectors = direct.json()["embeddings"]
    assert len(vectors) == 3 and len(vectors[0]) == 32
    assert torch.allclose(
        torch.tensor(vectors), torch.tensor(Embedder.load(encoder_dir).embed(TEXTS)[0]), atol=1e-5
    )

    wait_registered(redis_url, "tiny-encoder")
    dispatcher = client.app.state.platform.dispatcher
    dispatched = client.portal.call(dispatcher.embed, EmbedRequest(**body))
    assert torch.allclose(torch.tensor(dispatched.embeddings), torch.tensor(vectors), atol=1e-6)
    too_long = httpx.post(
        f"{embed_worker.url}/internal/embed", json=body | {"inputs": ["a " * 200]}, headers=headers
    )
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
    generate = httpx.post(
        f"{embed_worker.url}/internal/generate",
        headers=headers,
        json={
            "request_id": "g",
            "tenant": "t",
            "model": "tiny-encoder",
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert generate.status_code == 400


def test_chat_with_an_embedding_model_is_refused(embed_worker, platform, tenant_a):
    key = bearer(platform.create_key(tenant_a)["key"])
    response = platform.client.post(
        "/v1/chat/completions",
        headers=key,
        json={"model": "tiny-encoder", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert assert_error(response, 400, "invalid_model")["param"] == "model"


def test_token_ids_embed_as_their_text_does(encoder_dir):
    embedder = Embedder.load(encoder_dir)
    ids = [embedder.tokenizer(text, add_special_tokens=False)["input_ids"] for text in TEXTS]
    from_ids = embedder.forward(embedder.prepare(ids))
    assert torch.allclose(torch.tensor(from_ids), torch.tensor(embedder.embed(TEXTS)[0]), atol=1e-6)
    with pytest.raises(InvalidParameter):
        embedder.prepare([[len(embedder.tokenizer) + 5]])


def test_concurrent_callers_are_batched_into_fewer_forwards(embed_worker):
    headers = {"Authorization": f"Bearer {WORKER_SECRET}"}
    before = scrape(embed_worker.url)

    def call(i: int) -> list[list[float]]:
        body = {"request_id": f"b{i}", "tenant": "t", "model": "tiny-encoder", "inputs": [TEXTS[i % 3]] * 3}
        response = httpx.post(f"{embed_worker.url}/internal/embed", json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["embeddings"]

    callers = 16
    with ThreadPoolExecutor(callers) as pool:
        answers = list(pool.map(call, range(callers)))
    after = scrape(embed_worker.url)
    forwards = after.value("llmp_worker_embed_forwards_total") - before.value(
        "llmp_worker_embed_forwards_total"
    )
    assert after.value("llmp_worker_requests_total") - before.value("llmp_worker_requests_total") == callers
    # Each request one forward without batching; with it, those that arrive together share one (how
    # many arrive together depends on the machine's timing, so only "fewer" is certain).
    assert 1 <= forwards < callers
    for i, vectors in enumerate(answers):  # each caller got its own inputs' vectors back
        assert len(vectors) == 3 and vectors[0] == pytest.approx(answers[i % 3][0], abs=1e-5)
