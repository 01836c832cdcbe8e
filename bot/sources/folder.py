"""``folder``: the readable files under a local folder (glob), changes noticed by modification time and size."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from langchain_core.documents import Document

from bot.errors import IngestError
from bot.sources.globs import path_filter
from bot.sources.loader import SourceLoader, failed, fetched, load_bytes, unchanged
from bot.sources.model import SourceError


class FolderLoader(SourceLoader):
    """Files are found by walking the folder; a link leading out of it is refused (failed), never followed."""

    async def alazy_load(self) -> AsyncIterator[Document]:
        root = Path(self.source.target).expanduser()
        if not root.is_dir():
            raise SourceError(f"{root} is not a readable folder")
        root = root.resolve()
        paths = await asyncio.to_thread(self._listing, root)
        limit = self.source.options.max_pages
        if len(paths) > limit:
            self.complete = False
            self.notes.append(f"{len(paths)} files match; only the first {limit} (max-pages) are synced")
        for path in paths[:limit]:
            yield await self._read(root, path)

    def _listing(self, root: Path) -> list[Path]:
        """Matching files, sorted; linked folders are not entered (no loops, nothing outside by that route)."""
        wanted = path_filter(self.source.options.glob)
        found = []
        for folder, _, names in os.walk(root, followlinks=False):
            for name in names:
                path = Path(folder, name)
                if wanted(path.relative_to(root).as_posix()) and path.is_file():
                    found.append(path)
        return sorted(found)

    async def _read(self, root: Path, path: Path) -> Document:
        resolved = path.resolve()
        uri = resolved.as_uri()
        if not resolved.is_relative_to(root):
            return failed(path.as_uri(), f"{path} leads outside {root}; not read")
        try:
            stat = resolved.stat()
            version = f"{stat.st_mtime_ns}:{stat.st_size}"
            if self.is_unchanged(uri, version):
                return unchanged(uri, version)
            limit = self.settings.max_document_bytes
            if stat.st_size > limit:
                raise IngestError(f"{path} is {stat.st_size} bytes, more than the {limit}-byte limit")
            data = await asyncio.to_thread(resolved.read_bytes)
            return fetched(uri, version, await load_bytes(data, filename=resolved.name))
        except OSError as e:
            return failed(uri, f"cannot read {path}: {e.strerror or e}")
        except IngestError as e:
            return failed(uri, str(e))
