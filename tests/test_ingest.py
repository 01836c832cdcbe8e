"""The ingestion pipeline end to end: real Postgres + pgvector, real MiniLM embeddings, real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from bot.domain import Chunk
from bot.errors import IngestError, StorageError, UnsafeURLError
from bot.ingest.loaders import MAX_TITLE_CHARS
from bot.ingest.pipeline import EMBED_WINDOW_BATCHES, Ingestor, TextSource, expand_sources
from bot.settings import Settings
from bot.storage import documents
from tests.fixtures.embeddings import CountingEmbedder
from tests.fixtures.http import LocalHTTPServer
from tests.fixtures.ingest import make_pdf
from tests.test_loaders import ARTICLE_HTML

CHUNK_ROWS = """
SELECT ordinal, heading, text, lexemes, token_count, vector_norm(embedding) AS norm
FROM chunks WHERE document_id = %(id)s ORDER BY ordinal
"""
COUNTS = """
SELECT d.chunk_count, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id)
FROM documents d WHERE d.id = %(id)s
"""


@pytest.fixture
def ingestor(pool: AsyncConnectionPool, counting: CountingEmbedder, settings: Settings) -> Ingestor:
    return Ingestor(pool, counting, settings)


async def _rows(pool: AsyncConnectionPool, document_id: int) -> list[tuple]:
    async with pool.connection() as conn:
        return await (await conn.execute(CHUNK_ROWS, {"id": document_id})).fetchall()


async def _chunk_total(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        return (await (await conn.execute("SELECT count(*) FROM chunks")).fetchone())[0]


async def test_text_is_chunked_embedded_and_stored_with_cjk_lexemes(ingestor: Ingestor, pool) -> None:
    result = await ingestor.add_text(
        "员工每年有十五天带薪年假。年假需要提前两周申请！\n\nAnnual leave is fifteen days.",
        title="Leave policy",
        scope="hr",
        source_uri=None,
        added_by="slack:U1",
    )
    document = result.document
    assert result.status == "added"
    assert (document.scope, document.source_uri, document.title) == ("hr", "text:Leave policy", "Leave policy")
    assert (document.mime_type, document.added_by, document.chunk_count) == ("text/plain", "slack:U1", 1)
    [(ordinal, heading, text, lexemes, token_count, norm)] = await _rows(pool, document.id)
    assert (ordinal, heading) == (0, "")
    assert text.startswith("Leave policy\n\n员工每年")
    assert "年假" in lexemes.split() and "带薪" in lexemes.split()
    assert token_count > 10
    assert norm == pytest.approx(1.0, abs=1e-3)
    assert await documents.get_document(pool, document.id) == document


async def test_a_huge_title_is_capped_and_does_not_multiply_the_stored_text(ingestor: Ingestor, pool) -> None:
    body = "Revenue grew in every region this quarter. " * 230  # ~10 kB
    result = await ingestor.add_text(body, title="Q3 " * 33000, scope="hr", source_uri=None, added_by="slack:U1")

    document = result.document
    assert len(document.title) <= MAX_TITLE_CHARS and document.title.startswith("Q3 Q3")
    assert document.source_uri == f"text:{document.title}"
    rows = await _rows(pool, document.id)
    assert len(rows) == document.chunk_count <= 16
    assert sum(len(text) for _, _, text, *_ in rows) < 3 * len(body)


async def test_markdown_html_and_pdf_are_stored_with_detected_types_and_titles(ingestor: Ingestor, pool) -> None:
    files = {
        "guide.md": b"# Setup Guide\n\nRun the installer.\n\n## Troubleshooting\n\nRestart the service first.",
        "page.html": ARTICLE_HTML.encode(),
        "report.bin": make_pdf(["Quarterly Report", "Revenue grew this quarter."], title="Q3 Report"),
    }
    for name, data in files.items():
        await ingestor.add_bytes(data, filename=name, scope="docs", source_uri=f"upload:{name}", added_by="t")
    listed = {
        d.source_uri: (d.title, d.mime_type, d.size_bytes) for d in await documents.list_documents(pool, ["docs"])
    }
    assert listed == {
        "upload:guide.md": ("Setup Guide", "text/markdown", len(files["guide.md"])),
        "upload:page.html": ("Widget Guide", "text/html", len(files["page.html"])),
        "upload:report.bin": ("Q3 Report", "application/pdf", len(files["report.bin"])),
    }
    guide = next(d for d in await documents.list_documents(pool, ["docs"]) if d.source_uri == "upload:guide.md")
    headings = [row[1] for row in await _rows(pool, guide.id)]
    assert headings == ["Setup Guide", "Troubleshooting"]


async def test_re_adding_a_source_replaces_its_chunks(ingestor: Ingestor, pool) -> None:
    first = await ingestor.add_text(
        "Old policy: lunch is at noon.", title="Lunch", scope="hr", source_uri="wiki:lunch", added_by="a"
    )
    second = await ingestor.add_text(
        "New policy: lunch is at one.", title="Lunch", scope="hr", source_uri="wiki:lunch", added_by="b"
    )
    assert (first.status, second.status) == ("added", "replaced")
    assert second.document.id == first.document.id and second.document.added_by == "b"
    texts = [row[2] for row in await _rows(pool, first.document.id)]
    assert texts == ["Lunch\n\nNew policy: lunch is at one."]
    assert await _chunk_total(pool) == 1


async def test_identical_content_is_unchanged_and_not_embedded_again(
    ingestor: Ingestor, counting: CountingEmbedder
) -> None:
    data = b"# FAQ\n\nThe office opens at nine."
    first = await ingestor.add_bytes(data, filename="faq.md", scope="docs", source_uri="upload:faq.md", added_by="a")
    embedded = counting.embedded
    again = await ingestor.add_bytes(data, filename="faq.md", scope="docs", source_uri="upload:faq.md", added_by="b")
    assert again.status == "unchanged" and again.document == first.document
    assert counting.embedded == embedded


async def test_the_same_content_under_another_source_is_a_new_document(ingestor: Ingestor) -> None:
    one = await ingestor.add_text("Same words.", title="", scope="docs", source_uri="a", added_by="t")
    two = await ingestor.add_text("Same words.", title="", scope="docs", source_uri="b", added_by="t")
    assert two.status == "added" and two.document.id != one.document.id


def _unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _chunks(count: int, word: str) -> list[Chunk]:
    return [Chunk(i, f"{word} chunk {i}", "", 3) for i in range(count)]


async def _store(pool: AsyncConnectionPool, chunks: list[Chunk], content_hash: str, seed: int = 0):
    (result,) = await documents.replace_documents(pool, [_write("upload:x", chunks, content_hash, seed)])
    return result


def _write(source_uri: str, chunks: list[Chunk], content_hash: str, seed: int = 0) -> documents.DocumentWrite:
    return documents.DocumentWrite(
        scope="docs",
        source_uri=source_uri,
        title="X",
        mime_type="text/plain",
        content_hash=content_hash,
        size_bytes=10,
        added_by="t",
        chunks=chunks,
        embeddings=_unit_vectors(len(chunks), 384, seed),
    )


async def test_a_replace_that_fails_midway_leaves_the_old_document_whole(pool: AsyncConnectionPool) -> None:
    old = (await _store(pool, _chunks(5, "old"), "h1")).document
    broken = [*_chunks(50, "new"), Chunk(50, "NUL \x00 is not valid in Postgres text", "", 3)]
    with pytest.raises(StorageError, match="storing the document failed") as info:
        await _store(pool, broken, "h2")
    assert isinstance(info.value.__cause__, psycopg.Error)
    assert await documents.get_document(pool, old.id) == old
    assert [row[2] for row in await _rows(pool, old.id)] == [f"old chunk {i}" for i in range(5)]


async def test_a_batch_is_stored_in_one_transaction_with_results_in_the_given_order(pool: AsyncConnectionPool) -> None:
    kept = await _store(pool, _chunks(2, "kept"), "h1")
    writes = [_write("upload:z", _chunks(3, "zed"), "z"), _write("upload:x", _chunks(1, "ex"), "h2")]
    results = await documents.replace_documents(pool, [*writes, _write("upload:a", _chunks(2, "ay"), "a")])
    assert [(r.document.source_uri, r.status, r.chunk_count) for r in results] == [
        ("upload:z", "added", 3),
        ("upload:x", "replaced", 1),
        ("upload:a", "added", 2),
    ]
    assert results[1].document.id == kept.document.id
    assert [row[2] for row in await _rows(pool, results[0].document.id)] == [f"zed chunk {i}" for i in range(3)]
    assert [row[2] for row in await _rows(pool, kept.document.id)] == ["ex chunk 0"]

    broken = [_write("upload:new", _chunks(2, "new"), "n"), _write("upload:a", [Chunk(0, "NUL \x00", "", 2)], "b")]
    with pytest.raises(StorageError, match="storing 2 documents failed"):
        await documents.replace_documents(pool, broken)
    assert sorted(d.source_uri for d in await documents.list_documents(pool, ["docs"])) == [
        "upload:a",
        "upload:x",
        "upload:z",
    ]
    assert await _chunk_total(pool) == 6


async def test_a_batch_refuses_a_source_twice_and_chunks_without_embeddings(pool: AsyncConnectionPool) -> None:
    with pytest.raises(ValueError, match="a source appears twice"):
        await documents.replace_documents(pool, [_write("upload:x", _chunks(1, "a"), "a")] * 2)
    mismatched = _write("upload:y", _chunks(2, "b"), "b")
    with pytest.raises(ValueError, match="2 chunks but 1 embeddings"):
        await documents.replace_documents(pool, [dataclasses.replace(mismatched, embeddings=mismatched.embeddings[:1])])
    assert await documents.replace_documents(pool, []) == []
    assert await _chunk_total(pool) == 0


async def test_concurrent_readers_never_see_half_a_document(pool: AsyncConnectionPool, database_url: str) -> None:
    old = (await _store(pool, _chunks(5, "old"), "h1")).document
    replace = asyncio.create_task(_store(pool, _chunks(1000, "new"), "h2", seed=1))
    seen: set[tuple[int, int]] = set()
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as reader:
        while True:
            done = replace.done()
            seen.add(tuple(await (await reader.execute(COUNTS, {"id": old.id})).fetchone()))
            if done:
                break
    assert (await replace).status == "replaced"
    assert seen <= {(5, 5), (1000, 1000)} and (1000, 1000) in seen


async def test_removing_a_document_deletes_its_chunks_only_within_the_given_scopes(ingestor: Ingestor, pool) -> None:
    result = await ingestor.add_text("Parking is free.", title="Parking", scope="hr", source_uri=None, added_by="t")
    assert await documents.delete_document(pool, result.document.id, ["docs"]) is None
    assert await _chunk_total(pool) == 1
    removed = await documents.delete_document(pool, result.document.id, ["hr", "docs"])
    assert removed == result.document
    assert await documents.get_document(pool, result.document.id) is None
    assert await _chunk_total(pool) == 0
    assert await documents.delete_document(pool, result.document.id, ["hr"]) is None


async def test_documents_are_listed_per_scope_newest_first(ingestor: Ingestor, pool) -> None:
    for name, scope in [("a", "hr"), ("b", "docs"), ("c", "hr")]:
        await ingestor.add_text(f"Document {name}.", title=name, scope=scope, source_uri=None, added_by="t")
    assert [d.title for d in await documents.list_documents(pool, ["hr"])] == ["c", "a"]
    assert await documents.list_documents(pool, ["nothing"]) == []


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"", "empty.txt", "document has no text"),
        (b"   \n\n  ", "blank.md", "document has no text"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "photo.txt", "unsupported/binary"),
        (b"<html>login</html>", "report.pdf", "is not one"),
        (make_pdf(["x"])[:200], "cut.pdf", "malformed PDF"),
        (b"x" * 5000, "huge.txt", "5000 bytes, more than the 4096-byte limit"),
    ],
    ids=["empty", "whitespace", "binary", "fake-pdf", "truncated-pdf", "huge"],
)
async def test_bad_files_are_refused_and_nothing_is_stored(
    pool: AsyncConnectionPool, counting: CountingEmbedder, settings: Settings, data: bytes, filename: str, message: str
) -> None:
    ingestor = Ingestor(pool, counting, settings.model_copy(update={"max_document_bytes": 4096}))
    with pytest.raises(IngestError, match=message):
        await ingestor.add_bytes(data, filename=filename, scope="docs", source_uri=f"upload:{filename}", added_by="t")
    assert await documents.list_documents(pool, ["docs"]) == []
    assert counting.embedded == 0


async def test_too_many_chunks_is_refused_and_nothing_is_stored(pool, counting, settings: Settings) -> None:
    limited = settings.model_copy(update={"max_chunks_per_document": 2, "chunk_tokens": 32})
    text = " ".join(f"Sentence {i} is about something else entirely." for i in range(40))
    with pytest.raises(IngestError, match="more than 2 chunks"):
        await Ingestor(pool, counting, limited).add_text(
            text, title="Long", scope="docs", source_uri=None, added_by="t"
        )
    assert await documents.list_documents(pool, ["docs"]) == [] and counting.embedded == 0


@pytest.mark.parametrize("scope", ["", "has space", "x" * 65, "semi;colon"])
async def test_invalid_scope_names_are_refused(ingestor: Ingestor, scope: str) -> None:
    with pytest.raises(IngestError, match="invalid scope name"):
        await ingestor.add_text("Text.", title="t", scope=scope, source_uri=None, added_by="t")


async def test_add_path_stores_the_file_under_its_file_uri(ingestor: Ingestor, tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nThe wifi password rotates monthly.", encoding="utf-8")
    result = await ingestor.add_path(path, scope="docs", added_by="cli")
    assert (result.status, result.document.source_uri, result.document.title) == ("added", path.as_uri(), "Notes")
    path.write_text("# Notes\n\nThe wifi password rotates weekly.", encoding="utf-8")
    assert (await ingestor.add_path(path, scope="docs", added_by="cli")).status == "replaced"


async def test_add_path_refuses_oversize_missing_and_non_files_before_reading(
    pool, counting, settings: Settings, tmp_path: Path
) -> None:
    ingestor = Ingestor(pool, counting, settings.model_copy(update={"max_document_bytes": 1024}))
    sparse = tmp_path / "huge.txt"
    with sparse.open("wb") as handle:
        handle.truncate(10 * 1024**3)  # 10 GiB of nothing: reading it would take a while
    with pytest.raises(IngestError, match=r"is 10737418240 bytes, more than the 1024-byte limit"):
        await ingestor.add_path(sparse, scope="docs", added_by="cli")
    with pytest.raises(IngestError, match="cannot read"):
        await ingestor.add_path(tmp_path / "missing.txt", scope="docs", added_by="cli")
    with pytest.raises(IngestError, match="is not a regular file"):
        await ingestor.add_path(tmp_path, scope="docs", added_by="cli")
    assert await documents.list_documents(pool, ["docs"]) == []


@pytest.fixture
def url_ingestor(pool, counting, settings: Settings, http_server: LocalHTTPServer) -> Ingestor:
    allowed = settings.model_copy(
        update={"fetch_allowed_hosts": [http_server.host], "max_document_bytes": 4096, "fetch_timeout_s": 1.0}
    )
    return Ingestor(pool, counting, allowed)


async def test_add_url_stores_the_page_under_the_requested_url(
    url_ingestor: Ingestor,
    http_server: LocalHTTPServer,
) -> None:
    http_server.serve("/guide", ARTICLE_HTML.encode(), content_type="text/html; charset=utf-8")
    url = http_server.redirect("/latest", "/guide")
    result = await url_ingestor.add_url(url, scope="docs", added_by="t")
    assert (result.status, result.document.source_uri) == ("added", url)
    assert (result.document.title, result.document.mime_type) == ("Widget Guide", "text/html")
    assert (await url_ingestor.add_url(url, scope="docs", added_by="t")).status == "unchanged"


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/to-metadata", UnsafeURLError, "metadata"),
        ("/to-private", UnsafeURLError, "loopback/private"),
        ("/huge", IngestError, "more than the 4096-byte limit"),
        ("/slow", IngestError, r"t(imed out|ook longer)"),
    ],
)
async def test_refused_and_failed_urls_store_nothing(
    url_ingestor: Ingestor,
    http_server: LocalHTTPServer,
    pool,
    path: str,
    error: type[Exception],
    message: str,
) -> None:
    http_server.redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/")
    http_server.redirect("/to-private", "http://10.0.0.7/wiki")
    http_server.serve("/huge", b"z" * 10_000, send_length=False)
    http_server.stall("/slow")
    with pytest.raises(error, match=message):
        await url_ingestor.add_url(http_server.url(path), scope="docs", added_by="t")
    assert await documents.list_documents(pool, ["docs"]) == []


def test_expand_sources_walks_folders_with_the_pattern_and_passes_urls_through(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("b")
    (tmp_path / "sub" / "c.txt").write_text("c")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.md").write_text("d")
    single = tmp_path / "sub" / "c.txt"
    sources = expand_sources([str(tmp_path), "https://example.com/page", str(single), str(tmp_path)], "*.md")
    assert sources == [tmp_path / "a.md", tmp_path / "sub" / "b.md", "https://example.com/page", single]


def test_expand_sources_reports_missing_paths() -> None:
    with pytest.raises(IngestError, match=r"no such file or folder: /nope/missing\.txt"):
        expand_sources(["/nope/missing.txt"])


async def _collect(ingestor: Ingestor, items, scope: str = "docs") -> list:
    return [outcome async for _, outcome in ingestor.add_many(items, scope=scope, added_by="t")]


async def test_bulk_results_and_chunks_equal_the_per_document_path(
    pool: AsyncConnectionPool, counting: CountingEmbedder, settings: Settings, tmp_path: Path
) -> None:
    small = settings.model_copy(update={"embedding_batch_size": 3, "chunk_tokens": 32})
    long_text = " ".join(f"Sentence {i} is about something else entirely." for i in range(12))
    (tmp_path / "hours.md").write_text("# Hours\n\nThe desk opens at nine.\n")
    texts = [TextSource(f"Document {i} says {i * 7}.", title=f"d{i}") for i in range(5)] + [
        TextSource(long_text, title="long")
    ]
    items = [*texts, tmp_path / "hours.md"]
    one_by_one = Ingestor(pool, counting, small)
    expected = [
        await one_by_one.add_text(t.text, title=t.title, scope="one", source_uri=t.source_uri, added_by="t")
        for t in texts
    ] + [await one_by_one.add_path(tmp_path / "hours.md", scope="one", added_by="t")]
    calls: list[int] = []
    inner = counting.embed_documents
    counting.embed_documents = lambda chunk_texts: calls.append(len(chunk_texts)) or inner(chunk_texts)
    bulk = await _collect(Ingestor(pool, counting, small), items, scope="bulk")
    assert [r.status for r in bulk] == ["added"] * len(items)
    assert len(calls) < len(items) and sum(calls) == sum(r.chunk_count for r in expected)
    for got, want in zip(bulk, expected, strict=True):
        assert (got.document.source_uri, got.document.title, got.document.mime_type) == (
            want.document.source_uri,
            want.document.title,
            want.document.mime_type,
        )
        assert (got.document.content_hash, got.chunk_count) == (want.document.content_hash, want.chunk_count)
        got_rows, want_rows = await _rows(pool, got.document.id), await _rows(pool, want.document.id)
        assert [row[:5] for row in got_rows] == [row[:5] for row in want_rows]


async def test_bulk_embeds_full_windows_across_documents_one_model_call_each(
    pool: AsyncConnectionPool, counting: CountingEmbedder, settings: Settings
) -> None:
    small = settings.model_copy(update={"embedding_batch_size": 2})
    window = small.embedding_batch_size * EMBED_WINDOW_BATCHES
    items = [TextSource(f"Note {i}: the printer on floor {i} was serviced.", title=f"n{i}") for i in range(window + 3)]
    calls: list[int] = []
    inner = counting.embed_documents
    counting.embed_documents = lambda chunk_texts: calls.append(len(chunk_texts)) or inner(chunk_texts)

    results = await _collect(Ingestor(pool, counting, small), items, scope="bulk")

    assert [r.status for r in results] == ["added"] * len(items)
    assert calls == [window, 3]  # one call per window of one-chunk documents, full but for the last


async def test_bulk_embeds_the_next_window_while_the_previous_one_is_stored(
    pool: AsyncConnectionPool, counting: CountingEmbedder, settings: Settings, database_url: str
) -> None:
    """Storing the first window is held up by a lock that only the second window's embedding call releases:
    ingestion finishes only if that call runs while the first window waits to be stored."""
    small = settings.model_copy(update={"embedding_batch_size": 2})
    window = small.embedding_batch_size * EMBED_WINDOW_BATCHES
    items = [TextSource(f"Note {i}: the printer on floor {i} was serviced.", title=f"n{i}") for i in range(2 * window)]
    blocker = psycopg.connect(database_url)
    blocker.execute("LOCK TABLE chunks IN EXCLUSIVE MODE")  # writers wait; the transaction stays open
    calls: list[int] = []
    inner = counting.embed_documents

    def embed(chunk_texts: Sequence[str]) -> np.ndarray:
        calls.append(len(chunk_texts))
        if len(calls) == 2:
            blocker.commit()  # releases the lock the first window's storing waits for
        return inner(chunk_texts)

    counting.embed_documents = embed
    try:
        results = await asyncio.wait_for(_collect(Ingestor(pool, counting, small), items, scope="bulk"), 60)
    finally:
        blocker.close()
    assert [r.status for r in results] == ["added"] * len(items)
    assert calls == [window, window]


async def test_bulk_skips_unchanged_replaces_changed_and_isolates_bad_documents(
    pool: AsyncConnectionPool, counting: CountingEmbedder, settings: Settings
) -> None:
    ingestor = Ingestor(pool, counting, settings.model_copy(update={"max_document_bytes": 4096}))
    kept = await ingestor.add_text("Parking is free.", title="Parking", scope="docs", source_uri=None, added_by="t")
    changed = await ingestor.add_text("Lunch is at noon.", title="Lunch", scope="docs", source_uri=None, added_by="t")
    embedded = counting.embedded
    items = [
        TextSource("Parking is free.", title="Parking"),
        TextSource("Lunch is at one.", title="Lunch"),
        TextSource("   \n ", title="Blank"),
        TextSource("x" * 5000, title="Huge"),
        TextSource("Holidays are in August.", title="Holidays"),
        TextSource("Holidays are in August.", title="Holidays"),
    ]
    outcomes = await _collect(ingestor, items)
    assert outcomes[0].status == "unchanged" and outcomes[0].document == kept.document
    assert outcomes[1].status == "replaced" and outcomes[1].document.id == changed.document.id
    assert isinstance(outcomes[2], IngestError) and "document has no text" in str(outcomes[2])
    assert isinstance(outcomes[3], IngestError) and "more than the 4096-byte limit" in str(outcomes[3])
    assert outcomes[4].status == "added" and outcomes[5].status == "unchanged"
    assert outcomes[5].document.id == outcomes[4].document.id
    assert counting.embedded == embedded + 2  # only the changed and the new document
    titles = sorted(d.title for d in await documents.list_documents(pool, ["docs"]))
    assert titles == ["Holidays", "Lunch", "Parking"]


REFUSE_ONE_SOURCE = """
CREATE FUNCTION refuse_source() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.source_uri = 'text:Refused' THEN RAISE EXCEPTION 'refused by the test'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_source BEFORE INSERT ON documents FOR EACH ROW EXECUTE FUNCTION refuse_source();
"""


async def test_bulk_stores_a_window_together_and_a_document_the_database_refuses_fails_alone(
    pool: AsyncConnectionPool, counting: CountingEmbedder, ingestor: Ingestor
) -> None:
    async with pool.connection() as conn:
        await conn.execute(REFUSE_ONE_SOURCE)
    items = [TextSource(f"Room {i} is on floor {i}.", title=f"Room {i}") for i in range(3)]
    items.insert(1, TextSource("This one the database refuses.", title="Refused"))
    embedded = counting.embedded

    outcomes = await _collect(ingestor, items)

    assert isinstance(outcomes[1], StorageError) and "refused by the test" in str(outcomes[1])
    assert [o.status for o in outcomes[:1] + outcomes[2:]] == ["added"] * 3
    assert counting.embedded == embedded + 4  # embedded once, in one window; only storing was retried
    assert sorted(d.title for d in await documents.list_documents(pool, ["docs"])) == ["Room 0", "Room 1", "Room 2"]


async def test_bulk_binary_file_fails_alone(pool: AsyncConnectionPool, ingestor: Ingestor, tmp_path: Path) -> None:
    (tmp_path / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (tmp_path / "notes.md").write_text("# Notes\n\nThe printer is on floor two.\n")
    outcomes = await _collect(ingestor, [tmp_path / "photo.txt", tmp_path / "missing.md", tmp_path / "notes.md"])
    assert isinstance(outcomes[0], IngestError) and "unsupported/binary" in str(outcomes[0])
    assert isinstance(outcomes[1], IngestError) and "cannot read" in str(outcomes[1])
    assert outcomes[2].status == "added"
    assert [d.title for d in await documents.list_documents(pool, ["docs"])] == ["Notes"]


TERM_STATS = "SELECT term, df FROM term_stats ORDER BY term"
RECOUNTED = "SELECT t.lexeme, count(*) FROM chunks c, unnest(c.tsv) t GROUP BY t.lexeme ORDER BY t.lexeme"
SCOPE_STATS = "SELECT scope, chunks FROM scope_stats WHERE chunks > 0 ORDER BY scope"
SCOPES_RECOUNTED = "SELECT scope, count(*) FROM chunks GROUP BY scope ORDER BY scope"


async def _term_stats_and_recount(pool: AsyncConnectionPool) -> tuple[list, list]:
    """Term and scope statistics as kept by the triggers, and as counted from the chunks now."""
    async with pool.connection() as conn:
        kept = [*await (await conn.execute(TERM_STATS)).fetchall(), *await (await conn.execute(SCOPE_STATS)).fetchall()]
        counted = [
            *await (await conn.execute(RECOUNTED)).fetchall(),
            *await (await conn.execute(SCOPES_RECOUNTED)).fetchall(),
        ]
        return kept, counted


async def test_term_statistics_stay_exact_through_add_replace_and_delete(ingestor: Ingestor, pool) -> None:
    first = await ingestor.add_text(
        "Printer error E4711 means the fuser overheated.\n\n打印机错误代码表示定影器过热。",
        title="Printer errors", scope="default", source_uri="test://printer", added_by="test",
    )  # fmt: skip
    await ingestor.add_text("The printer jams.", title="Jams", scope="other", source_uri=None, added_by="test")
    added, recounted = await _term_stats_and_recount(pool)

    await ingestor.add_text(
        "Printer error E4712 means low toner.",
        title="Printer errors", scope="default", source_uri="test://printer", added_by="test",
    )  # fmt: skip
    replaced, recounted_after_replace = await _term_stats_and_recount(pool)

    await documents.delete_document(pool, first.document.id, ["default"])
    deleted, recounted_after_delete = await _term_stats_and_recount(pool)

    assert added == recounted and ("e4711", 1) in added and ("printer", 2) in added and ("打印", 1) in added
    assert replaced == recounted_after_replace and "e4711" not in dict(replaced) and ("e4712", 1) in replaced
    assert deleted == recounted_after_delete and ("printer", 1) in deleted and "e4712" not in dict(deleted)
    assert "default" in dict(added) and ("other", 1) in added  # scope sizes: exact like the terms
    assert "default" not in dict(deleted) and ("other", 1) in deleted
