"""The one shape every kind has: a LangChain ``BaseLoader`` yielding one ``Document`` per upstream document.

LangChain-community's loaders fetch with their own HTTP clients, around our SSRF guard and size limits, so each
kind here is a ``langchain_core`` ``BaseLoader`` of ours whose every request goes through
:func:`bot.ingest.fetch.fetch_url` (or, for Git, a locked-down ``git`` subprocess) and whose bytes go through
:func:`bot.ingest.loaders.load_document`. A yielded document's metadata says what became of it:

- ``fetched``: read now; ``page_content`` is its text, ``title`` its title;
- ``unchanged``: its change marker (``version``: lastmod, a version number, a Git blob id, mtime and size, a page's
  hash) equals the stored one, so it was not parsed (mostly not even read);
- ``failed``: it exists upstream but could not be read (``error`` says why); what was stored stays.

After the iteration, :attr:`SourceLoader.complete` tells whether the listing was whole: documents not yielded
are removed only then. The listing itself failing raises :class:`~bot.sources.model.SourceError`.
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping
from pathlib import PurePosixPath

import httpx
from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document

from bot.ingest.fetch import Fetched
from bot.ingest.loaders import LoadedDocument, decode_text, load_document
from bot.settings import Settings
from bot.sources.anchors import heading_anchors
from bot.sources.model import Source


class SourceLoader(BaseLoader):
    """Base of the kinds; ``known`` maps each stored upstream URI to its stored change marker."""

    def __init__(self, source: Source, settings: Settings, known: Mapping[str, str]) -> None:
        self.source = source
        self.settings = settings
        self.known = known
        self.complete = True
        """False once something (a failed page whose links are unknown, a truncated listing) hides documents."""
        self.revision = ""
        """What the upstream was at (a Git commit), recorded with the sync."""
        self.notes: list[str] = []
        """Things the admin should know that are not a document's failure (a listing cut at ``max_pages``)."""

    @abstractmethod
    def alazy_load(self) -> AsyncIterator[Document]:
        """Yield the source's documents (see the module docstring for their metadata)."""

    def is_unchanged(self, uri: str, version: str) -> bool:
        return bool(version) and self.known.get(uri) == version

    async def read_page(self, url: str, page: Fetched, version: str = "") -> Document:
        """A fetched web page as a document with its heading anchors (``anchors``) for citations, or ``unchanged``
        when its change marker held; without a marker (``lastmod``) the page's bytes are their own, so an
        unchanged page costs a request but no parsing. Raises :class:`~bot.errors.IngestError` when our loaders
        cannot read it."""
        version = version or "sha256:" + hashlib.sha256(page.data).hexdigest()
        if self.is_unchanged(url, version):
            return unchanged(url, version)
        name = PurePosixPath(httpx.URL(url).path).name or "index.html"
        loaded = await load_bytes(page.data, filename=name, content_type=page.content_type)
        html = loaded.mime_type == "text/html"
        anchors = await asyncio.to_thread(heading_anchors, decode_text(page.data)) if html else {}
        return fetched(url, version, loaded, anchors=anchors)


def fetched(uri: str, version: str, loaded: LoadedDocument, **extra: object) -> Document:
    metadata = {
        "source": uri,
        "state": "fetched",
        "version": version,
        "title": loaded.title,
        "mime_type": loaded.mime_type,
        **extra,
    }
    return Document(page_content=loaded.text, metadata=metadata)


def unchanged(uri: str, version: str) -> Document:
    return Document(page_content="", metadata={"source": uri, "state": "unchanged", "version": version})


def failed(uri: str, error: str) -> Document:
    return Document(page_content="", metadata={"source": uri, "state": "failed", "error": error})


async def load_bytes(data: bytes, *, filename: str, content_type: str | None = None) -> LoadedDocument:
    """Our loaders, in a worker thread (HTML and PDF parsing are CPU-bound)."""
    return await asyncio.to_thread(load_document, data, filename=filename, declared_mime=content_type)
