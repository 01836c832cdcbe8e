"""Candidate chunks for a query: nearest embeddings (pgvector HNSW) and full-text matches, within scopes.

Vector search sets ``hnsw.ef_search`` and ``hnsw.iterative_scan = relaxed_order`` before every query: without
iterative scans a scope filter is applied after the index returned ``ef_search`` rows, so a scope holding 1 % of
the chunks would get almost nothing. Relaxed order may return rows slightly out of order, hence the re-sort by
similarity. Both searches return chunk ids and scores; :func:`chunk_rows` reads what the chosen passages show.

Keyword search never ranks every chunk that shares a word with the query. Query terms (stemmed English words via
the ``english`` configuration, CJK character bigrams via ``simple``, the way ``chunks.tsv`` is built) are looked
up in ``term_stats`` (document frequencies) and the searched scopes' sizes in ``scope_stats``, both kept exact by
triggers (``migrations/0002_term_stats.sql``, ``0006_scope_stats.sql``). The caller (:mod:`bot.retrieval`)
chooses *clauses* a chunk must match — single rare terms, or pairs of commoner terms that must occur together —
and at most ``cap`` matching chunks are ranked by ``ts_rank(tsv, <every query term OR-ed>, 1)`` (frequency,
normalised by log document length). With an OR query ``ts_rank`` rewards chunks matching more of the query's
terms, while ``ts_rank_cd`` mostly scores single-term covers: on 500 SQuAD questions over 477 paragraphs recall@5
is 0.922 with ``ts_rank(…, 1)`` and 0.722 with ``ts_rank_cd``. The candidate query is never prepared on the
server: a generic plan cannot know that a small scope is best intersected with the text index (``BitmapAnd``)
rather than filtered after it. User text never reaches SQL: terms are reduced to letters/digits (or CJK bigrams)
and passed as parameters, and lexemes are quoted by ``quote_literal`` before they become a ``tsquery``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from bot.errors import RetrievalError
from bot.text import cjk_bigrams, words

log = logging.getLogger(__name__)

MAX_QUERY_TERMS = 64
"""Distinct terms per language kept from a query; a pasted log file must not become a 10,000-term OR."""

SET_VECTOR_SEARCH = """
SELECT set_config('hnsw.ef_search', %(ef_search)s, false), set_config('hnsw.iterative_scan', 'relaxed_order', false)
"""

VECTOR_CANDIDATES = """
SELECT c.id AS chunk_id, c.embedding <=> %(embedding)s AS distance  -- the sort key itself: computed once a row
FROM chunks c
WHERE c.scope = ANY(%(scopes)s)
ORDER BY c.embedding <=> %(embedding)s
LIMIT %(limit)s
"""

KEYWORD_STATISTICS = """
SELECT t.lexeme AS term, coalesce(s.df, 0) AS df, z.scoped, z.total
FROM unnest(to_tsvector('english', %(words)s) || to_tsvector('simple', %(bigrams)s)) t
LEFT JOIN term_stats s ON s.term = t.lexeme
CROSS JOIN (
    SELECT coalesce(sum(chunks) FILTER (WHERE scope = ANY(%(scopes)s)), 0)::bigint AS scoped,
           coalesce(sum(chunks), 0)::bigint AS total
    FROM scope_stats
) z
ORDER BY df, term
"""

KEYWORD_CANDIDATES = """
WITH found AS MATERIALIZED (
    SELECT c.id, c.tsv
    FROM chunks c
    WHERE c.scope = ANY(%(scopes)s)
      AND c.tsv @@ (
          SELECT string_agg(clause, ' | ')::tsquery
          FROM (
              SELECT '(' || string_agg(quote_literal(m.term), ' & ') || ')' AS clause
              FROM unnest(%(terms)s::text[], %(clauses)s::int[]) AS m(term, clause)
              GROUP BY m.clause
          ) c
      )
    LIMIT %(cap)s
)
SELECT f.id AS chunk_id, ts_rank(f.tsv, q.query, 1)::float8 AS score
FROM found f, (SELECT string_agg(quote_literal(t), ' | ')::tsquery AS query FROM unnest(%(rank)s::text[]) t) q
ORDER BY score DESC, f.id
LIMIT %(limit)s
"""

CHUNK_ROWS = """
SELECT c.id AS chunk_id, c.document_id, d.title, coalesce(l.url, d.source_uri) AS source_uri, c.scope, c.ordinal,
       c.text, 1 - (c.embedding <=> %(embedding)s::vector) AS similarity
FROM chunks c
JOIN documents d ON d.id = c.document_id
LEFT JOIN chunk_links l ON l.chunk_id = c.id  -- the exact place upstream of a synced chunk (bot.sources)
WHERE c.id = ANY(%(ids)s::bigint[])
"""


@dataclass(frozen=True, slots=True)
class Ranked:
    """A chunk one method found, with that method's score: cosine similarity to the query embedding (vector
    search) or ``ts_rank`` (keyword search)."""

    chunk_id: int
    score: float


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """What a passage shows of a chunk. ``similarity`` to the query is None when no query embedding was given."""

    chunk_id: int
    document_id: int
    title: str
    source_uri: str
    scope: str
    ordinal: int
    text: str
    similarity: float | None


@dataclass(frozen=True, slots=True)
class KeywordQuery:
    """A query's search words and CJK bigrams, each space-separated and distinct (either may be empty)."""

    words: str
    bigrams: str

    @classmethod
    def from_text(cls, text: str) -> KeywordQuery:
        terms = _distinct(words(text))
        bigrams = _distinct(cjk_bigrams(text))
        return cls(" ".join(terms), " ".join(bigrams))

    def __bool__(self) -> bool:
        return bool(self.words or self.bigrams)


@dataclass(frozen=True, slots=True)
class TermFrequency:
    """A query term as indexed (a lexeme) and how many chunks contain it (or are expected to, in some scopes)."""

    term: str
    df: float


@dataclass(frozen=True, slots=True)
class KeywordStatistics:
    """The query's distinct lexemes, rarest first, and how many chunks the searched scopes and all scopes hold."""

    terms: list[TermFrequency]
    scoped_chunks: int
    total_chunks: int


def _distinct(terms: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(terms))[:MAX_QUERY_TERMS]


@asynccontextmanager
async def _retrieval_errors() -> AsyncIterator[None]:
    try:
        yield
    except psycopg.Error as e:
        raise RetrievalError(f"searching the knowledge base failed: {e}") from e


async def vector_candidates(
    pool: AsyncConnectionPool, embedding: np.ndarray, scopes: Sequence[str], limit: int, *, ef_search: int
) -> list[Ranked]:
    """The ``limit`` chunks nearest to ``embedding`` in ``scopes``, nearest first (HNSW, iterative scan).

    The search settings and the query go to the server in one pipeline (one round trip); they are set for the
    session, which every vector search sets again, rather than for a transaction that would cost two more."""
    params = {"embedding": embedding, "scopes": list(scopes), "limit": limit}
    async with _retrieval_errors(), pool.connection() as conn, conn.pipeline():
        await conn.execute(SET_VECTOR_SEARCH, {"ef_search": str(ef_search)})
        cur = await conn.execute(VECTOR_CANDIDATES, params)
        found = [Ranked(chunk_id, 1.0 - distance) for chunk_id, distance in await cur.fetchall()]
    return sorted(found, key=lambda r: (-r.score, r.chunk_id))  # relaxed order: nearly sorted


async def keyword_statistics(
    pool: AsyncConnectionPool, keywords: KeywordQuery, scopes: Sequence[str]
) -> KeywordStatistics:
    """Document frequencies of the query's lexemes (0 when no chunk has one) and the scopes' sizes, one query."""
    params = {"words": keywords.words, "bigrams": keywords.bigrams, "scopes": list(scopes)}
    async with _retrieval_errors(), pool.connection() as conn:
        rows = await (await conn.execute(KEYWORD_STATISTICS, params)).fetchall()
    if not rows:
        return KeywordStatistics([], 0, 0)
    return KeywordStatistics([TermFrequency(term, df) for term, df, _, _ in rows], rows[0][2], rows[0][3])


async def keyword_candidates(
    pool: AsyncConnectionPool,
    *,
    match: Sequence[Sequence[str]],
    rank: Sequence[str],
    scopes: Sequence[str],
    limit: int,
    cap: int,
) -> list[Ranked]:
    """Chunks in ``scopes`` matching any clause of ``match`` (a clause: lexemes that must all occur; at most
    ``cap`` such chunks, in no particular order), best ``limit`` first by ``ts_rank`` against every lexeme of
    ``rank``. Raises :class:`RetrievalError` when the database fails."""
    params = {
        "terms": [term for clause in match for term in clause],
        "clauses": [number for number, clause in enumerate(match) for _ in clause],
        "rank": list(rank),
        "scopes": list(scopes),
        "limit": limit,
        "cap": cap,
    }
    async with _retrieval_errors(), pool.connection() as conn:
        cur = conn.cursor(row_factory=class_row(Ranked))
        await cur.execute(KEYWORD_CANDIDATES, params, prepare=False)
        return await cur.fetchall()


async def chunk_rows(
    pool: AsyncConnectionPool, chunk_ids: Sequence[int], embedding: np.ndarray | None
) -> dict[int, ChunkRow]:
    """The chunks ``chunk_ids`` with their documents, by id (a chunk deleted since it was found is missing), and
    their similarity to ``embedding`` when given. Raises :class:`RetrievalError` when the database fails."""
    if not chunk_ids:
        return {}
    params = {"ids": list(chunk_ids), "embedding": embedding}
    async with _retrieval_errors(), pool.connection() as conn:
        cur = await conn.cursor(row_factory=class_row(ChunkRow)).execute(CHUNK_ROWS, params)
        return {row.chunk_id: row for row in await cur.fetchall()}
