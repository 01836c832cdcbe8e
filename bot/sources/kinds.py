"""Which loader reads which kind. Imported lazily: the loaders pull in LangChain and parsers that commands which
never sync should not pay for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from bot.settings import Settings
from bot.sources.model import Source, SourceKind

if TYPE_CHECKING:
    from bot.sources.loader import SourceLoader


def loader_for(source: Source, settings: Settings, known: Mapping[str, str]) -> SourceLoader:
    """The loader of ``source``'s kind; ``known`` maps stored upstream URIs to their change markers."""
    if source.kind is SourceKind.FOLDER:
        from bot.sources.folder import FolderLoader as Loader
    elif source.kind is SourceKind.SITEMAP:
        from bot.sources.sitemap import SitemapLoader as Loader
    elif source.kind is SourceKind.WEB:
        from bot.sources.web import WebLoader as Loader
    elif source.kind is SourceKind.GIT:
        from bot.sources.git import GitLoader as Loader
    elif source.kind is SourceKind.CONFLUENCE:
        from bot.sources.confluence import ConfluenceLoader as Loader
    else:
        from bot.sources.notion import NotionLoader as Loader
    return Loader(source, settings, known)
