"""Loading documents: the bytes decide the format; bad input gets a clear IngestError."""

from __future__ import annotations

import codecs
import random

import pytest

from bot.errors import IngestError
from bot.ingest.loaders import load_document
from tests.fixtures.ingest import make_pdf

ARTICLE_HTML = """<!DOCTYPE html>
<html><head><title>Widget Guide</title></head>
<body><nav>Home | About | Careers</nav>
<article><h1>Widget Guide</h1>
<p>The widget is a small device that helps teams share knowledge across many channels in the company.</p>
<h2>Installation</h2>
<p>Install the widget by running the installer and following the prompts shown on screen, then restart.</p>
</article><footer>Copyright 2024 Widget Corp</footer></body></html>"""


def test_plain_text_keeps_its_text_and_takes_the_title_from_the_file_name() -> None:
    loaded = load_document(b"Opening hours\nWe open at 9.\r\n", filename="hours.txt")
    assert loaded == type(loaded)(title="hours", text="Opening hours\nWe open at 9.", mime_type="text/plain")


@pytest.mark.parametrize(
    "encoded",
    [
        codecs.BOM_UTF8 + "Grüße, 你好".encode(),
        "Grüße, 你好".encode("utf-16"),  # with BOM
        codecs.BOM_UTF16_BE + "Grüße, 你好".encode("utf-16-be"),
        "Grüße, hello there".encode("utf-16-le"),  # no BOM
        "Grüße".encode("cp1252"),
    ],
    ids=["utf8-bom", "utf16-bom", "utf16be-bom", "utf16le-no-bom", "cp1252"],
)
def test_text_encodings_are_detected_from_boms_and_content(encoded: bytes) -> None:
    loaded = load_document(encoded, filename="note.txt")
    assert loaded.text.startswith("Grüße")
    assert "\ufeff" not in loaded.text


@pytest.mark.parametrize(
    "text",
    [
        "Meeting notes\r\nThe printer on floor 2 is fixed.\r\n",  # ASCII only: also valid UTF-8, full of NULs
        "Notes 你好, 世界 and more plain words here.",
        "\u4e00\u4e01 The office opens at nine.",  # U+4E00 has a NUL low byte: NULs on both sides
    ],
    ids=["ascii", "latin-and-cjk", "nul-low-bytes"],
)
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_decoded_not_refused_as_binary(text: str, encoding: str) -> None:
    loaded = load_document(text.encode(encoding), filename="notes.txt")
    assert loaded.text == text.replace("\r\n", "\n").strip()


def test_markdown_keeps_headings_and_takes_the_first_h1_as_title() -> None:
    text = "# Onboarding\n\nWelcome.\n\n## Laptops\n\nIT hands them out on day one.\n"
    loaded = load_document(text.encode(), filename="onboarding.md")
    assert (loaded.title, loaded.mime_type) == ("Onboarding", "text/markdown")
    assert "## Laptops" in loaded.text


def test_html_is_extracted_with_its_title_headings_and_without_boilerplate() -> None:
    loaded = load_document(ARTICLE_HTML.encode(), filename="guide.html")
    assert (loaded.title, loaded.mime_type) == ("Widget Guide", "text/html")
    assert "## Installation" in loaded.text
    assert "Install the widget by running the installer" in loaded.text
    assert "<p>" not in loaded.text and "Careers" not in loaded.text


@pytest.mark.parametrize("filename", ["download.txt", "", "page"])
def test_html_is_recognised_by_content_whatever_the_name(filename: str) -> None:
    assert load_document(ARTICLE_HTML.encode(), filename=filename).mime_type == "text/html"


def test_pdf_text_and_metadata_title_are_extracted_even_under_another_name() -> None:
    data = make_pdf(["Quarterly Report", "Revenue grew (a lot) this quarter."], title="Q3 Report")
    loaded = load_document(data, filename="upload.bin", declared_mime="application/octet-stream")
    assert (loaded.title, loaded.mime_type) == ("Q3 Report", "application/pdf")
    assert "Revenue grew (a lot) this quarter." in loaded.text


def test_pdf_without_title_metadata_is_titled_by_its_first_line() -> None:
    assert load_document(make_pdf(["Travel Policy", "Book economy."]), filename="p.pdf").title == "Travel Policy"


@pytest.mark.parametrize(
    ("filename", "declared"), [("report.pdf", None), ("report", "application/pdf")], ids=["named", "declared"]
)
def test_a_pdf_that_is_not_a_pdf_is_refused_clearly(filename: str, declared: str | None) -> None:
    with pytest.raises(IngestError, match="is not one"):
        load_document(b"<html><body>Please log in</body></html>", filename=filename, declared_mime=declared)


def test_encrypted_pdf_is_refused_as_encrypted() -> None:
    with pytest.raises(IngestError, match="encrypted"):
        load_document(make_pdf(["secret"], password="hunter2"), filename="secret.pdf")


@pytest.mark.parametrize("cut", [0.3, 0.6], ids=["cut-early", "cut-late"])
def test_truncated_pdf_is_refused_as_malformed(cut: float) -> None:
    data = make_pdf(["Some text"])
    with pytest.raises(IngestError, match="malformed PDF") as info:
        load_document(data[: int(len(data) * cut)], filename="broken.pdf")
    assert info.value.__cause__ is not None


def test_pdf_without_text_says_it_has_no_text() -> None:
    with pytest.raises(IngestError, match="has no extractable text"):
        load_document(make_pdf([]), filename="scan.pdf")


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(100),
        b"PK\x03\x04" + bytes(100),
        random.Random(7).randbytes(4096),
        b"text\x00with\x01many\x02control\x03bytes\x04" * 20,
    ],
    ids=["png", "zip", "random-bytes", "control-chars"],
)
def test_binary_data_is_refused_as_unsupported(data: bytes) -> None:
    with pytest.raises(IngestError, match="unsupported/binary"):
        load_document(data, filename="notes.txt")


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b"", "empty.txt"),
        (b" \n\t\r\n ", "blank.md"),
        (codecs.BOM_UTF8, "bom-only.txt"),
        (b"<html><head><title>T</title></head><body><div></div></body></html>", "empty.html"),
    ],
    ids=["empty", "whitespace", "bom-only", "markup-only"],
)
def test_documents_without_text_are_refused(data: bytes, filename: str) -> None:
    with pytest.raises(IngestError, match="document has no text"):
        load_document(data, filename=filename)


def test_stray_nul_characters_are_removed_because_postgres_text_cannot_hold_them() -> None:
    loaded = load_document(
        b"A long enough line of ordinary text with one stray \x00 NUL in it, nothing else.", filename="a"
    )
    assert "\x00" not in loaded.text
