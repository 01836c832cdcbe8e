"""Hybrid retrieval: pgvector nearest neighbours + Postgres full-text, fused with reciprocal rank fusion.

Dense vectors find paraphrases; keywords find names, codes and rare words the embedding blurs. Reciprocal rank
fusion (score = Σ 1 / (rrf_k + rank)) needs no score calibration between the two. Only relevant passages are
returned — cosine similarity ≥ ``min_similarity`` or a keyword hit — so an empty list means "not found" and
the answer step can say so instead of inventing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
from psycopg_pool import AsyncConnectionPool

from bot.domain import Passage
from bot.embeddings import Embedder
from bot.settings import Settings
from bot.storage.search import Candidate, KeywordQuery, find_candidates

log = logging.getLogger(__name__)

SearchMode = Literal["hybrid", "vector", "keyword"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "vector", "keyword")

MAX_QUERY_CHARS = 4000
"""Longer queries are cut before embedding: far beyond every supported model's input window anyway."""


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
        keywords = KeywordQuery.from_text(query) if mode != "vector" else None
        log.debug("search query %r", query)
        started = time.perf_counter()
        nearest, matches = await find_candidates(
            self.pool,
            scopes,
            self.settings.retrieval_candidates,
            ef_search=self.settings.hnsw_ef_search,
            embedding=embedding,
            keywords=keywords,
            vector=mode != "keyword",
        )
        fused = fuse(nearest, matches, self.settings.rrf_k)
        passages = [p for p in fused if is_relevant(p, self.settings.min_similarity)][:k]
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


def clean_query(query: str) -> str:
    """The query without NUL characters (Postgres text cannot hold them) and surrounding whitespace."""
    return query.replace("\x00", " ").strip()


def _check(mode: str, k: int) -> None:
    if mode not in SEARCH_MODES:
        raise ValueError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def fuse(nearest: Sequence[Candidate], matches: Sequence[Candidate], rrf_k: int) -> list[Passage]:
    """Reciprocal rank fusion of two best-first candidate lists into passages, best first."""
    ranks: dict[int, dict[str, int]] = {}
    found: dict[int, Candidate] = {}
    for method, candidates in (("vector", nearest), ("keyword", matches)):
        for rank, candidate in enumerate(candidates, start=1):
            ranks.setdefault(candidate.chunk_id, {})[method] = rank
            if found.get(candidate.chunk_id) is None or found[candidate.chunk_id].similarity is None:
                found[candidate.chunk_id] = candidate
    passages = [
        _passage(found[chunk_id], sum(1.0 / (rrf_k + r) for r in by_method.values()), by_method)
        for chunk_id, by_method in ranks.items()
    ]
    passages.sort(key=lambda p: (-p.score, p.chunk_id))
    return passages


def is_relevant(passage: Passage, min_similarity: float) -> bool:
    """A keyword hit, or an embedding at least ``min_similarity`` close to the query's."""
    if passage.keyword_rank is not None:
        return True
    return passage.similarity is not None and passage.similarity >= min_similarity


def _passage(candidate: Candidate, score: float, ranks: dict[str, int]) -> Passage:
    return Passage(
        chunk_id=candidate.chunk_id,
        document_id=candidate.document_id,
        title=candidate.title,
        source_uri=candidate.source_uri,
        text=candidate.text,
        score=score,
        scope=candidate.scope,
        ordinal=candidate.ordinal,
        vector_rank=ranks.get("vector"),
        keyword_rank=ranks.get("keyword"),
        similarity=candidate.similarity,
    )
