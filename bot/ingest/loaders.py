"""Turn uploaded bytes into plain text with a title, deciding the format by content, not by name.

Names and declared MIME types come from users and chat platforms and are often wrong (a ``report.pdf`` that is
an HTML login page, a ``notes.txt`` in UTF-16). The bytes decide; the name only breaks ties between formats the
bytes cannot tell apart (Markdown vs plain text) and makes a lying ``.pdf`` a clear error.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from bot.errors import IngestError

log = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
PDF_HEADER_WINDOW = 1024
"""Readers accept a PDF header anywhere in the first KiB; so do we."""

_BINARY_MAGICS: dict[bytes, str] = {
    b"\x89PNG": "PNG image",
    b"\xff\xd8\xff": "JPEG image",
    b"GIF8": "GIF image",
    b"PK\x03\x04": "ZIP archive (docx/xlsx/odt are not supported yet)",
    b"\x1f\x8b": "gzip archive",
    b"\x7fELF": "executable",
    b"MZ": "Windows executable",
    b"\xd0\xcf\x11\xe0": "legacy Office document",
}
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
UTF16_MIN_NUL_RATIO = 0.1
"""UTF-16 without a BOM is only guessed when at least this share of its code units has a NUL byte (any Latin)."""
MAX_CONTROL_CHAR_RATIO = 0.01
"""More control characters than this (outside tab/newline/form feed; one stray is fine) means binary junk."""

_HTML_SNIFF = re.compile(r"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)
_TAG = re.compile(r"<[a-zA-Z][^>]*>")
_MD_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd"}
_HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
MAX_TITLE_CHARS = 200
READABLE_TYPES = frozenset(
    {"application/pdf", "application/json", "application/xml", "application/xhtml+xml", "application/x-yaml"}
)
"""Besides any ``text/*``: declared types worth downloading (the bytes are checked again once loaded)."""
READABLE_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".csv", ".json", ".log"})
"""Used only when an upload declares no type."""


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """Extracted text ready for chunking, with the title and the MIME type the content turned out to be."""

    title: str
    text: str
    mime_type: str


def check_readable(filename: str, declared_mime: str | None) -> None:
    """Refuse, before downloading, an upload whose declared type (or, without one, name) this module cannot read;
    raises :class:`IngestError`."""
    content_type = (declared_mime or "").split(";")[0].strip().lower()
    if content_type.startswith("text/") or content_type in READABLE_TYPES:
        return
    if not content_type and PurePosixPath(filename).suffix.lower() in READABLE_SUFFIXES:
        return
    raise IngestError(
        f"{filename} ({content_type or 'unknown type'}) is not supported; use text, Markdown, HTML or PDF"
    )


def load_document(data: bytes, *, filename: str, declared_mime: str | None = None) -> LoadedDocument:
    """Extract title and text from ``data``; raises :class:`IngestError` for binary, malformed or empty input."""
    suffix = PurePosixPath(filename).suffix.lower()
    declared = (declared_mime or "").split(";")[0].strip().lower()
    if PDF_MAGIC in data[:PDF_HEADER_WINDOW]:
        loaded = _load_pdf(data, filename)
    elif suffix == ".pdf" or declared == "application/pdf":
        raise IngestError(f"{filename or 'the file'} is named or declared as a PDF but is not one (no %PDF- header)")
    else:
        text = decode_text(data, filename)
        if _HTML_SNIFF.search(text[:2048]) or ((suffix in _HTML_SUFFIXES or "html" in declared) and _TAG.search(text)):
            loaded = _load_html(text, filename)
        elif suffix in _MARKDOWN_SUFFIXES or declared in ("text/markdown", "text/x-markdown"):
            loaded = LoadedDocument(
                _markdown_title(text) or _stem(filename) or _first_line(text), text, "text/markdown"
            )
        else:
            loaded = LoadedDocument(_stem(filename) or _first_line(text), text, "text/plain")
    text = loaded.text.replace("\x00", "").strip()  # Postgres text cannot hold NUL
    if not text:
        raise IngestError(f"document has no text: {filename or 'the upload'} contains only whitespace or markup")
    log.debug("loaded %s as %s: %d chars", filename, loaded.mime_type, len(text))
    return LoadedDocument(clean_title(loaded.title), text, loaded.mime_type)


def decode_text(data: bytes, filename: str = "") -> str:
    """Decode text by BOM, then UTF-8, UTF-16 without BOM, then Windows-1252; refuse binary data."""
    what = filename or "the file"
    for magic, kind in _BINARY_MAGICS.items():
        if data.startswith(magic):
            raise IngestError(f"unsupported/binary content: {what} is a {kind}")
    text = _decode(data)
    if text is None:
        raise IngestError(f"unsupported/binary content: {what} is not text in a known encoding")
    if text:
        controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f") + text.count("\x7f")
        if controls > max(1, MAX_CONTROL_CHAR_RATIO * len(text)):
            raise IngestError(f"unsupported/binary content: {what} holds {controls} control characters")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    has_nul = b"\x00" in data
    utf16 = _bomless_utf16(data) if has_nul else None  # before UTF-8: ASCII in UTF-16 is valid UTF-8 as well
    if utf16 is not None:
        return utf16
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if has_nul:
        return None
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return None


def _bomless_utf16(data: bytes) -> str | None:
    """UTF-16 without a BOM: Latin text puts a NUL byte in every other position (odd ones in little-endian, even
    ones in big-endian), so the side with clearly more NULs tells the byte order. A CJK character can have a NUL
    byte on the other side (U+4E00 is ``00 4E``), so one side must dominate rather than be NUL-free; and a few
    stray NULs in UTF-8 text are not enough."""
    if len(data) < 2 or len(data) % 2:
        return None
    even_nuls, odd_nuls = data[0::2].count(0), data[1::2].count(0)
    enough = max(2, UTF16_MIN_NUL_RATIO * len(data) / 2)
    if odd_nuls >= enough and odd_nuls > 2 * even_nuls:
        encoding = "utf-16-le"
    elif even_nuls >= enough and even_nuls > 2 * odd_nuls:
        encoding = "utf-16-be"
    else:
        return None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _load_pdf(data: bytes, filename: str) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    what = filename or "the PDF"
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{what} is encrypted (password protected); upload an unprotected copy")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except IngestError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError, ZeroDivisionError) as e:
        raise IngestError(f"malformed PDF: {what} could not be read ({type(e).__name__}: {e})") from e
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise IngestError(f"document has no text: {what} has no extractable text (scanned images need OCR)")
    return LoadedDocument(str(meta_title).strip() or _first_line(text), text, "application/pdf")


def _load_html(html: str, filename: str) -> LoadedDocument:
    import trafilatura

    text = trafilatura.extract(html, output_format="markdown", include_formatting=True, include_comments=False)
    if not text:
        text = trafilatura.html2txt(html)
    metadata = trafilatura.extract_metadata(html)
    title = (metadata.title if metadata else None) or _markdown_title(text or "") or _stem(filename)
    return LoadedDocument(title or _first_line(text or ""), text or "", "text/html")


def _markdown_title(text: str) -> str:
    match = _MD_H1.search(text)
    return match.group(1) if match else ""


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _stem(filename: str) -> str:
    return PurePosixPath(filename).stem if filename else ""


def clean_title(title: str) -> str:
    """One line of at most ``MAX_TITLE_CHARS`` characters, without Markdown heading marks."""
    title = " ".join(title.lstrip("# ").split())
    return title[:MAX_TITLE_CHARS] or "untitled"
