"""Hybrid retrieval: pgvector nearest neighbours + Postgres full-text, fused with reciprocal rank fusion.

Dense vectors find paraphrases; keywords find names, codes and rare words the embedding blurs. Reciprocal rank
fusion (score = Σ 1 / (rrf_k + rank)) needs no score calibration between the two. Only relevant passages are
returned — cosine similarity ≥ ``min_similarity`` or a keyword hit — so an empty list means "not found" and
the answer step can say so instead of inventing.

The two methods run at once on two connections and return chunk ids with their scores only; the text, title and
source of the ``k`` passages that survive fusion are read afterwards, in one more query, instead of those of every
candidate (80 by default) in both. Keyword search never ranks every chunk that shares a word with
the query; it ranks a budget of chunks (:func:`keyword_budget`) that match *clauses* chosen from term statistics
(:func:`keyword_clauses`): the rarest terms on their own, then pairs of commoner terms that must occur together,
as long as the chunks they are expected to match in the searched scopes add up to the budget. Its cost follows
the budget, not the corpus or how common the query's words are. Common words still count in the ranking. A scope
holding 1 % of the chunks is expected to hold 1 % of a term's chunks, so a small scope can afford commoner
terms, and the text index is intersected with the scope's. When that finds fewer than the ``k`` passages wanted,
every term matches, within the same budget.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from psycopg_pool import AsyncConnectionPool

from bot.domain import Passage
from bot.embeddings import Embedder
from bot.settings import Settings
from bot.storage.search import (
    ChunkRow,
    KeywordQuery,
    Ranked,
    TermFrequency,
    chunk_rows,
    keyword_candidates,
    keyword_statistics,
    vector_candidates,
)

log = logging.getLogger(__name__)

SearchMode = Literal["hybrid", "vector", "keyword"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "vector", "keyword")

MAX_QUERY_CHARS = 4000
"""Longer queries are cut before embedding: far beyond every supported model's input window anyway."""

KEYWORD_BUDGET_FLOOR = 250
"""Chunks keyword search may always rank (a small corpus's share would be a handful); cheap at any size."""

MAX_PAIRED_TERMS = 3
"""Commoner terms considered for pairs: 3 pairs at most, whatever the query's length. The text index reads the
posting lists of every paired term, and with candidates read as ids that scan is most of a keyword search: at 100k
chunks 3 terms took keyword p95 3.0-3.7 ms against 4.7-5.3 for 6 (hybrid 5.4-5.8 against 7.0-7.7), at 1M 10.0-10.3
against 12.5-12.9, with the same keyword answers (English answer@10 0.915 against 0.900 at 100k) and hybrid's at
1M; at 100k hybrid found 95 of 100 Chinese answers against 98 (ranking every match finds 95). 12 terms (66 pairs)
cost p95 16.5 ms at 1M for the same answers as 6."""


class Retriever:
    """Finds the passages that answer a query, limited to the caller's scopes."""

    def __init__(self, pool: AsyncConnectionPool, embedder: Embedder, settings: Settings) -> None:
        self.pool = pool
        self.embedder = embedder
        self.settings = settings

    async def search(self, query: str, scopes: Sequence[str], k: int, *, mode: SearchMode = "hybrid") -> list[Passage]:
        """The ``k`` best relevant passages, best first; ``[]`` means nothing relevant was found.

        An empty or whitespace-only query, or no scopes, finds nothing (``[]``) rather than failing: there is
        nothing to search for. Raises :class:`~bot.errors.RetrievalError` when the database or the embedding
        endpoint fails, :class:`ValueError` for an unknown ``mode`` or ``k < 1``.
        """
        query = clean_query(query)
        _check(mode, k)
        if not query or not scopes:
            return []
        embedding = None
        started = time.perf_counter()
        if mode != "keyword":
            embedding = await asyncio.to_thread(self.embedder.embed_query, query[:MAX_QUERY_CHARS])
        embed_ms = (time.perf_counter() - started) * 1000
        passages = await self.search_with_embedding(query, embedding, scopes, k, mode=mode)
        log.info("embedded the query in %.1f ms", embed_ms)
        return passages

    async def search_with_embedding(
        self,
        query: str,
        embedding: np.ndarray | None,
        scopes: Sequence[str],
        k: int,
        *,
        mode: SearchMode = "hybrid",
    ) -> list[Passage]:
        """Like :meth:`search` with the query already embedded (benchmarks, or one embedding for many modes).

        ``embedding`` may be None only in ``keyword`` mode; when given there it fills ``similarity``.
        """
        query = clean_query(query)
        _check(mode, k)
        if embedding is None and mode != "keyword":
            raise ValueError(f"mode {mode!r} needs the query embedding")
        if not query or not scopes:
            return []
        log.debug("search query %r", query)
        started = time.perf_counter()
        nearest, matches = await asyncio.gather(
            self._nearest(embedding, scopes) if mode != "keyword" else _nothing(),
            self._matching(query, scopes, k) if mode != "vector" else _nothing(),
        )
        fused = fuse(nearest, matches, self.settings.rrf_k)
        chosen = [f for f in fused if is_relevant(f, self.settings.min_similarity)][:k]
        rows = await chunk_rows(self.pool, [f.chunk_id for f in chosen], embedding)
        passages = [_passage(rows[f.chunk_id], f) for f in chosen if f.chunk_id in rows]
        log.info(
            "search mode=%s scopes=%d: %d vector + %d keyword candidates, %d fused, %d returned in %.1f ms",
            mode,
            len(scopes),
            len(nearest),
            len(matches),
            len(fused),
            len(passages),
            (time.perf_counter() - started) * 1000,
        )
        return passages

    async def _nearest(self, embedding: np.ndarray | None, scopes: Sequence[str]) -> list[Ranked]:
        assert embedding is not None, "checked by search_with_embedding"
        limit, ef_search = self.settings.retrieval_candidates, self.settings.hnsw_ef_search
        return await vector_candidates(self.pool, embedding, scopes, limit, ef_search=ef_search)

    async def _matching(self, query: str, scopes: Sequence[str], k: int) -> list[Ranked]:
        """Keyword candidates: the chunks of the rarest clauses, of every term when those are fewer than ``k``."""
        keywords = KeywordQuery.from_text(query)
        if not keywords:
            return []
        stats = await keyword_statistics(self.pool, keywords, scopes)
        every = [t.term for t in stats.terms if t.df > 0]
        if not every or not stats.scoped_chunks:
            return []
        share = stats.scoped_chunks / max(stats.total_chunks, stats.scoped_chunks)
        expected = [TermFrequency(t.term, t.df * share) for t in stats.terms]
        budget = keyword_budget(stats.scoped_chunks, self.settings)
        clauses = keyword_clauses(expected, budget, stats.scoped_chunks)
        limit = self.settings.retrieval_candidates
        cap = max(budget, limit)  # never fewer chunks ranked than candidates wanted
        ranked = functools.partial(keyword_candidates, self.pool, rank=every, scopes=scopes, limit=limit, cap=cap)
        found = await ranked(match=clauses)
        if len(found) < k and set(clauses) != {(term,) for term in every}:
            wider = {c.chunk_id: c for c in [*found, *await ranked(match=[(term,) for term in every])]}
            found = sorted(wider.values(), key=lambda c: (-c.score, c.chunk_id))[:limit]
        return found


def keyword_budget(chunks: int, settings: Settings) -> int:
    """How many of the ``chunks`` searched keyword search ranks: ``keyword_budget_share`` of them, at least
    :data:`KEYWORD_BUDGET_FLOOR`, never more than ``keyword_budget``.

    What decides whether the answer is among the ranked chunks is the share of the matches ranked; what decides the
    cost is their number. On the bench corpus ranking 0.1 % finds the same answers as ranking 1 % (answer@10 at
    100k chunks: 100 ranked 0.895 / 0.940 en / zh, 1,000 ranked 0.900 / 0.930; at 1M, 1,000 ranked 0.905 and 250
    ranked 0.845 in English), while at 100k ranking 250 instead of 1,000 halves keyword search's p95.
    """
    share = max(KEYWORD_BUDGET_FLOOR, round(chunks * settings.keyword_budget_share))
    return min(settings.keyword_budget, share)


def keyword_clauses(frequencies: Sequence[TermFrequency], budget: int, chunks: int) -> list[tuple[str, ...]]:
    """What a chunk must match to be ranked: single terms and pairs of terms, expected in at most ``budget`` of
    ``chunks`` chunks together.

    The rarest terms come first, each on its own. Then pairs of the commoner ones must occur together, the pairs
    expected in the fewest chunks first (``df_a · df_b / chunks``, as if the terms were independent). An answer
    usually holds several of the question's words: at 1M chunks the rarest word of half the questions occurs in
    more than 1,000 chunks, and ranking an arbitrary 1,000 of them lost answers that its pairs with the other
    words find. When nothing fits, the rarest term alone (its chunks are then cut at the budget). Terms no chunk
    contains are skipped: they match nothing.
    """
    terms = sorted((t for t in frequencies if t.df > 0), key=lambda t: (t.df, t.term))
    clauses: list[tuple[str, ...]] = []
    expected = 0.0
    for t in terms:
        if expected + t.df > budget:
            break
        clauses.append((t.term,))
        expected += t.df
    common = terms[len(clauses) :][:MAX_PAIRED_TERMS]
    pairs = sorted((a.df * b.df / chunks, a.term, b.term) for a, b in itertools.combinations(common, 2))
    for estimate, a, b in pairs:
        if expected + estimate > budget:
            break
        clauses.append((a, b))
        expected += estimate
    return clauses or [(t.term,) for t in terms[:1]]


async def _nothing() -> list[Ranked]:
    return []


def clean_query(query: str) -> str:
    """The query without NUL characters (Postgres text cannot hold them) and surrounding whitespace."""
    return query.replace("\x00", " ").strip()


def _check(mode: str, k: int) -> None:
    if mode not in SEARCH_MODES:
        raise ValueError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


@dataclass(frozen=True, slots=True)
class Fused:
    """A candidate after fusion: its score (higher is better), its rank in each method that found it, and its
    similarity to the query when vector search found it."""

    chunk_id: int
    score: float
    vector_rank: int | None
    keyword_rank: int | None
    similarity: float | None


def fuse(nearest: Sequence[Ranked], matches: Sequence[Ranked], rrf_k: int) -> list[Fused]:
    """Reciprocal rank fusion of two best-first candidate lists, best first."""
    ranks: dict[int, dict[str, int]] = {}
    for method, candidates in (("vector", nearest), ("keyword", matches)):
        for rank, candidate in enumerate(candidates, start=1):
            ranks.setdefault(candidate.chunk_id, {})[method] = rank
    similarity = {c.chunk_id: c.score for c in nearest}
    fused = [
        Fused(
            chunk_id=chunk_id,
            score=sum(1.0 / (rrf_k + r) for r in by_method.values()),
            vector_rank=by_method.get("vector"),
            keyword_rank=by_method.get("keyword"),
            similarity=similarity.get(chunk_id),
        )
        for chunk_id, by_method in ranks.items()
    ]
    fused.sort(key=lambda f: (-f.score, f.chunk_id))
    return fused


def is_relevant(candidate: Fused, min_similarity: float) -> bool:
    """A keyword hit, or an embedding at least ``min_similarity`` close to the query's."""
    if candidate.keyword_rank is not None:
        return True
    return candidate.similarity is not None and candidate.similarity >= min_similarity


def _passage(row: ChunkRow, fused: Fused) -> Passage:
    return Passage(
        chunk_id=row.chunk_id,
        document_id=row.document_id,
        title=row.title,
        source_uri=row.source_uri,
        text=row.text,
        score=fused.score,
        scope=row.scope,
        ordinal=row.ordinal,
        vector_rank=fused.vector_rank,
        keyword_rank=fused.keyword_rank,
        similarity=row.similarity,
    )
