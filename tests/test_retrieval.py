"""Hybrid retrieval against a real Postgres + pgvector with real MiniLM embeddings."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator

import numpy as np
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from bot.embeddings import Embedder
from bot.errors import RetrievalError
from bot.retrieval import Retriever, keyword_budget, keyword_clauses
from bot.settings import Settings
from bot.storage import search
from bot.storage.pool import open_pool
from bot.storage.search import TermFrequency
from tests.fixtures.embeddings import CorpusDocument, IndexCorpus

HANDBOOK = [
    CorpusDocument(
        "Vacation policy",
        ["Employees get 25 days of paid annual leave. Unused vacation can be carried over until March 31."],
    ),
    CorpusDocument(
        "VPN setup",
        ["To connect to the company network from home, install WireGuard and import the file from the IT portal."],
    ),
    CorpusDocument(
        "Expense reports",
        ["Submit receipts for travel within 30 days using the Concur app. Meals are reimbursed up to 50 EUR."],
    ),
    CorpusDocument(
        "Printer errors", ["Printer error E4711 means the fuser overheated; switch the printer off for ten minutes."]
    ),
    CorpusDocument(
        "Office kitchen", ["The coffee machine on the third floor is descaled every Friday. Please rinse your mug."]
    ),
    CorpusDocument(
        "Parking", ["Visitor parking spots are in the underground garage on level two and are booked at reception."]
    ),
]


@pytest.fixture
def retriever(pool: AsyncConnectionPool, embedder: Embedder, settings: Settings) -> Retriever:
    return Retriever(pool, embedder, settings)


@pytest.fixture
async def handbook(index_documents: IndexCorpus) -> dict[str, int]:
    """The handbook indexed in scope ``default``: title → chunk id."""
    ids = await index_documents(HANDBOOK)
    return {document.title: chunk_ids[0] for document, chunk_ids in zip(HANDBOOK, ids, strict=True)}


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("How many days off do I get each year?", "Vacation policy"),  # paraphrase: the embedding's job
        ("E4711", "Printer errors"),  # an opaque code: the keywords' job
        ("working remotely, how do I reach internal systems?", "VPN setup"),
        ("Where should our visitors park?", "Parking"),
    ],
)
async def test_hybrid_search_puts_the_answering_chunk_first(
    retriever: Retriever, handbook: dict[str, int], query: str, title: str
) -> None:
    passages = await retriever.search(query, ["default"], 3)

    assert passages[0].chunk_id == handbook[title]
    assert passages[0].title == title
    assert passages[0].source_uri == f"test://default/{title}"


async def test_passages_carry_ranks_similarity_and_descending_fused_scores(
    retriever: Retriever, handbook: dict[str, int], settings: Settings
) -> None:
    passages = await retriever.search("printer error E4711 overheated", ["default"], 5)

    top = passages[0]
    assert top.chunk_id == handbook["Printer errors"]
    assert top.vector_rank == 1
    assert top.keyword_rank == 1
    assert top.similarity is not None and top.similarity > 0.5
    assert top.score == pytest.approx(2 / (settings.rrf_k + 1))
    assert top.scope == "default"
    assert top.ordinal == 0
    assert "fuser" in top.text
    scores = [p.score for p in passages]
    assert scores == sorted(scores, reverse=True)
    assert all(p.similarity is not None for p in passages)


async def test_vector_and_keyword_modes_use_only_their_own_method(
    retriever: Retriever, handbook: dict[str, int]
) -> None:
    vector = await retriever.search("E4711 printer", ["default"], 5, mode="vector")
    keyword = await retriever.search("E4711 printer", ["default"], 5, mode="keyword")

    assert vector and all(p.keyword_rank is None and p.vector_rank is not None for p in vector)
    assert [p.chunk_id for p in keyword] == [handbook["Printer errors"]]
    assert keyword[0].vector_rank is None


async def test_search_never_returns_chunks_of_other_scopes(retriever: Retriever, index_documents: IndexCorpus) -> None:
    text = "The release checklist requires two approvals before deploying to production."
    ids = await index_documents(
        [
            CorpusDocument("Checklist A", [text], scope="team-a"),
            CorpusDocument("Checklist B", [text], scope="team-b"),
            CorpusDocument("Checklist C", [text], scope="team-c"),
        ]
    )
    a, b, c = (chunk_ids[0] for chunk_ids in ids)

    only_a = await retriever.search("release approvals", ["team-a"], 5)
    a_and_c = await retriever.search("release approvals", ["team-a", "team-c"], 5)
    unknown = await retriever.search("release approvals", ["nobody"], 5)
    no_scopes = await retriever.search("release approvals", [], 5)

    assert [p.chunk_id for p in only_a] == [a]
    assert {p.chunk_id for p in a_and_c} == {a, c}
    assert b not in {p.chunk_id for p in a_and_c}
    assert unknown == [] and no_scopes == []


async def test_chinese_questions_find_chinese_chunks_through_character_bigrams(
    retriever: Retriever, index_documents: IndexCorpus
) -> None:
    ids = await index_documents(
        [
            CorpusDocument("报销制度", ["差旅费用须在三十天内提交报销单，餐费每天最多报销五十欧元。"]),
            CorpusDocument("请假制度", ["员工每年享有二十五天带薪年假，未休假期可以延续到次年三月。"]),
            CorpusDocument("Mixed", ["打印机错误代码 E4711 表示定影器过热，请关机十分钟。"]),
        ]
    )

    leave = await retriever.search("带薪年假有几天？", ["default"], 3, mode="keyword")
    mixed = await retriever.search("打印机 E4711 怎么办", ["default"], 3)

    assert leave[0].chunk_id == ids[1][0]
    assert leave[0].keyword_rank == 1
    assert mixed[0].chunk_id == ids[2][0]
    assert mixed[0].keyword_rank == 1


async def test_a_question_the_knowledge_base_cannot_answer_finds_nothing(
    retriever: Retriever, handbook: dict[str, int]
) -> None:
    assert await retriever.search("What is the boiling point of liquid nitrogen in kelvin?", ["default"], 5) == []
    assert await retriever.search("Wer gewann die Fußballweltmeisterschaft 1954?", ["default"], 5) == []


@pytest.mark.parametrize("query", ["", "   ", "\n\t", "\x00"])
async def test_an_empty_query_finds_nothing(retriever: Retriever, handbook: dict[str, int], query: str) -> None:
    assert await retriever.search(query, ["default"], 5) == []


@pytest.mark.parametrize(
    "query",
    [
        "'; DROP TABLE chunks; --",
        "printer' OR '1'='1",
        "printer & | ! <-> :* ( ) \\ \" '",
        "printer\x00error",
        "$1 %(scopes)s {scope} E4711",
        "the of and a",  # only stop words: no keyword terms at all
    ],
)
async def test_hostile_query_text_is_only_ever_searched_for(
    retriever: Retriever, handbook: dict[str, int], pool: AsyncConnectionPool, query: str
) -> None:
    passages = await retriever.search(query, ["default"], 5)

    assert all(p.scope == "default" for p in passages)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM chunks")
        assert (await cur.fetchone())[0] == len(HANDBOOK)


async def test_a_huge_query_is_searched_with_bounded_terms(retriever: Retriever, handbook: dict[str, int]) -> None:
    words = " ".join(f"word{i}" for i in range(20_000))
    passages = await retriever.search(f"E4711 printer {words}", ["default"], 5)

    assert passages[0].chunk_id == handbook["Printer errors"]
    assert len(search.KeywordQuery.from_text(words).words.split()) == search.MAX_QUERY_TERMS


async def test_invalid_mode_or_k_is_a_value_error(retriever: Retriever) -> None:
    with pytest.raises(ValueError, match="unknown search mode"):
        await retriever.search("x", ["default"], 5, mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be at least 1"):
        await retriever.search("x", ["default"], 0)


async def test_database_failures_are_retrieval_errors(
    retriever: Retriever, handbook: dict[str, int], pool: AsyncConnectionPool
) -> None:
    async with pool.connection() as conn:
        await conn.execute("ALTER TABLE chunks RENAME TO chunks_elsewhere")

    with pytest.raises(RetrievalError, match="searching the knowledge base failed") as failure:
        await retriever.search("printer", ["default"], 5)
    assert isinstance(failure.value.__cause__, psycopg.Error)


async def test_search_logs_counts_and_timings_but_not_the_question_at_info(
    retriever: Retriever, handbook: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "confidential merger with Initech"
    with caplog.at_level(logging.INFO, logger="bot.retrieval"):
        await retriever.search(secret, ["default"], 5)

    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any("vector" in m and "keyword candidates" in m and " ms" in m for m in info)
    assert not any("Initech" in m for m in info)


# --- a small scope among many chunks (HNSW with a filter) ---------------------------------------------------

SMALL_SCOPE_CHUNKS = 100
BULK_CHUNKS = 9_900  # the small scope holds 1 % of all chunks
COLORS = ["red", "grey", "white", "black", "brown"]
ANIMALS = ["fox", "wolf", "owl", "bear", "otter"]
PLACES = ["forest", "river", "mountain", "meadow"]


@pytest.fixture
async def one_percent_scope(index_documents: IndexCorpus, embedder: Embedder, pool: AsyncConnectionPool) -> list[int]:
    """100 real chunks in scope ``small``; 9,900 chunks in scope ``bulk`` whose vectors crowd around them."""
    sentences = [
        f"The {color} {animal} lives near the {place} (note {n})."
        for n, (color, animal, place) in enumerate(itertools.product(COLORS, ANIMALS, PLACES))
    ]
    assert len(sentences) == SMALL_SCOPE_CHUNKS
    (small_ids,) = await index_documents([CorpusDocument("Animals", sentences, scope="small")])
    await index_documents([CorpusDocument("Bulk", ["placeholder"], scope="bulk")])
    vectors = embedder.embed_documents(sentences)
    rng = np.random.default_rng(7)
    bulk = vectors[np.arange(BULK_CHUNKS) % SMALL_SCOPE_CHUNKS] + rng.normal(scale=0.03, size=(BULK_CHUNKS, 384))
    bulk = (bulk / np.linalg.norm(bulk, axis=1, keepdims=True)).astype(np.float32)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM documents WHERE scope = 'bulk'")
        (document_id,) = await cur.fetchone()
        copy_sql = "COPY chunks (document_id, scope, ordinal, text, embedding) FROM STDIN WITH (FORMAT BINARY)"
        async with conn.cursor().copy(copy_sql) as copy:
            copy.set_types(["int8", "text", "int4", "text", "vector"])
            for ordinal, vector in enumerate(bulk, start=1):
                await copy.write_row([document_id, "bulk", ordinal, f"filler row {ordinal}", vector])
        await conn.execute("ANALYZE chunks")
    return small_ids


@pytest.fixture
async def hnsw_only_pool(
    one_percent_scope: list[int], pool: AsyncConnectionPool, database_url: str, settings: Settings
) -> AsyncIterator[AsyncConnectionPool]:
    """A pool whose planner cannot avoid the HNSW index (no scope index, no sequential scans)."""
    async with pool.connection() as conn:
        await conn.execute("DROP INDEX chunks_scope_idx")
    forced = await open_pool(psycopg.conninfo.make_conninfo(database_url, options="-c enable_seqscan=off"), settings)
    yield forced
    await forced.close()


async def test_a_scope_with_one_percent_of_the_chunks_still_returns_k_results(
    retriever: Retriever, one_percent_scope: list[int]
) -> None:
    passages = await retriever.search("The red fox lives near the forest.", ["small"], 10, mode="vector")

    assert len(passages) == 10
    assert {p.chunk_id for p in passages} <= set(one_percent_scope)


async def test_iterative_hnsw_scan_fills_k_results_for_a_one_percent_scope(
    hnsw_only_pool: AsyncConnectionPool, embedder: Embedder, settings: Settings, one_percent_scope: list[int]
) -> None:
    query = embedder.embed_query("The red fox lives near the forest.")
    params = {"embedding": query, "scopes": ["small"], "limit": 10}
    async with hnsw_only_pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(settings.hnsw_ef_search)])
        await conn.execute("SET LOCAL hnsw.iterative_scan = off")  # a connection that searched before has it on
        plan = "\n".join(
            row[0] for row in await (await conn.execute("EXPLAIN " + search.VECTOR_CANDIDATES, params)).fetchall()
        )
        without_iterative_scan = await (await conn.execute(search.VECTOR_CANDIDATES, params)).fetchall()

    passages = await Retriever(hnsw_only_pool, embedder, settings).search(
        "The red fox lives near the forest.", ["small"], 10, mode="vector"
    )

    assert "chunks_embedding_hnsw" in plan
    assert len(without_iterative_scan) < 10  # the failure iterative scans exist to fix
    assert len(passages) == 10
    assert {p.chunk_id for p in passages} <= set(one_percent_scope)
    similarities = [p.similarity for p in passages]
    assert similarities == sorted(similarities, reverse=True)


# --- keyword search from the rarest terms -----------------------------------------------------------------


def test_keyword_clauses_take_the_rarest_terms_alone_then_pairs_of_commoner_ones() -> None:
    frequencies = [
        TermFrequency("printer", 900),
        TermFrequency("e4711", 1),
        TermFrequency("the", 0),
        TermFrequency("error", 3000),
        TermFrequency("floor", 20_000),
    ]

    # 1 + 900 fit alone; printer is taken, error x floor is expected in 3000 * 20000 / 1M = 60 chunks
    assert keyword_clauses(frequencies, budget=1000, chunks=1_000_000) == [("e4711",), ("printer",), ("error", "floor")]
    # printer x error (2.7) and printer x floor (18) fit, error x floor (60) does not
    assert keyword_clauses(frequencies, budget=30, chunks=1_000_000) == [
        ("e4711",),
        ("printer", "error"),
        ("printer", "floor"),
    ]
    # in a corpus of 20k chunks every pair is expected too often: the rarest term alone
    assert keyword_clauses(frequencies, budget=30, chunks=20_000)[1:] == []
    assert keyword_clauses([TermFrequency("printer", 900)], budget=10, chunks=1000) == [("printer",)]
    assert keyword_clauses([TermFrequency("nowhere", 0)], budget=10, chunks=1000) == []


def test_keyword_clauses_pair_only_the_rarest_few_terms_of_a_long_query() -> None:
    frequencies = [TermFrequency(f"word{i:02d}", 5000 + i) for i in range(64)]

    clauses = keyword_clauses(frequencies, budget=4000, chunks=10**6)  # no term alone, every pair (25 each) fits

    assert len(clauses) == 3 and {t for clause in clauses for t in clause} == {f"word{i:02d}" for i in range(3)}


def test_the_keyword_budget_is_a_share_of_the_searched_chunks_between_a_floor_and_the_setting() -> None:
    defaults = Settings(_env_file=None)  # 0.1 %, at least 250, at most 1,000

    assert [keyword_budget(n, defaults) for n in (0, 477, 100_000, 500_000, 1_000_000, 10**7)] == [
        250,
        250,
        250,
        500,
        1000,
        1000,
    ]
    assert keyword_budget(100_000, defaults.model_copy(update={"keyword_budget": 5})) == 5  # the setting caps
    everything = defaults.model_copy(update={"keyword_budget": 10**9, "keyword_budget_share": 1.0})
    assert keyword_budget(2_000_000, everything) == 2_000_000


@pytest.fixture
async def printer_pile(index_documents: IndexCorpus) -> list[list[int]]:
    """60 chunks about printers in ``bulk``, one naming error E4711 there, 12 about printers in ``small``."""
    return await index_documents(
        [
            CorpusDocument(
                "Printers", [f"Printer number {i} stands on floor {i % 5}." for i in range(60)], scope="bulk"
            ),
            CorpusDocument("Fuser", ["Printer error E4711 means the fuser overheated."], scope="bulk"),
            CorpusDocument("Small", [f"The printer in room {i} prints labels." for i in range(12)], scope="small"),
        ]
    )


async def test_a_rare_term_finds_its_chunk_when_only_a_few_chunks_are_ranked(
    pool: AsyncConnectionPool, embedder: Embedder, settings: Settings, printer_pile: list[list[int]]
) -> None:
    narrow = Retriever(pool, embedder, settings.model_copy(update={"keyword_budget": 5}))

    passages = await narrow.search("printer error E4711", ["bulk"], 5, mode="keyword")

    assert passages[0].chunk_id == printer_pile[1][0]


async def test_common_terms_and_small_scopes_still_return_k(
    pool: AsyncConnectionPool, embedder: Embedder, settings: Settings, printer_pile: list[list[int]]
) -> None:
    narrow = Retriever(pool, embedder, settings.model_copy(update={"keyword_budget": 5}))

    common = await narrow.search("printer floor", ["bulk"], 10, mode="keyword")
    # "E4711" is the rarest term but lives outside the scope: the search widens to every term
    scoped = await narrow.search("printer E4711", ["small"], 10, mode="keyword")

    assert len(common) == 10
    assert len(scoped) == 10 and {p.chunk_id for p in scoped} <= set(printer_pile[2])


async def test_two_common_terms_that_occur_together_find_their_chunk_past_the_budget(
    pool: AsyncConnectionPool, embedder: Embedder, settings: Settings, index_documents: IndexCorpus
) -> None:
    """Each term alone is in 101 chunks, more than the 60 ranked: only the pair clause finds the one with both."""
    ids = await index_documents(
        [
            CorpusDocument("Copiers", [f"Copier {i} jams on the second floor." for i in range(100)]),
            CorpusDocument("Supplies", [f"Scanner {i} needs new toner soon." for i in range(100)]),
            CorpusDocument("Answer", ["The copier toner cartridge is kept in room 12."]),
        ]
    )
    narrow = Retriever(pool, embedder, settings.model_copy(update={"keyword_budget": 60}))

    passages = await narrow.search("copier toner", ["default"], 1, mode="keyword")

    assert [p.chunk_id for p in passages] == ids[2]
