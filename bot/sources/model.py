"""What a connected source is, what a sync did, and the checks a new source passes before it is stored.

A source is *kind + target + scope + schedule + options*. Options are small, typed and validated here (never free
text reaching a loader); credentials are never among them, only the name of an environment variable holding them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from bot.errors import LorebotError

SyncStatus = Literal["never", "ok", "partial", "failed"]

MIN_EVERY_S = 60
MAX_EVERY_S = 30 * 24 * 3600
_EVERY = re.compile(r"^\s*(\d{1,6})\s*([smhd])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_ERROR_CHARS = 500
OPTION_LIMITS: dict[str, tuple[float, float]] = {
    "depth": (0, 10),
    "max_pages": (1, 20_000),
    "per_host_per_s": (0.1, 1000),
}


class SourceKind(StrEnum):
    FOLDER = "folder"
    SITEMAP = "sitemap"
    WEB = "web"
    GIT = "git"
    CONFLUENCE = "confluence"
    NOTION = "notion"


class SourceError(LorebotError):
    """A source cannot be added, found or synced as asked (bad kind, target, schedule or option; busy)."""

    reason = "source problem"


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """Per-source settings; each kind reads the ones that concern it."""

    glob: str = ""
    """File filter for ``folder`` and ``git`` (``**`` crosses folders); empty = the kind's default."""
    depth: int = 3
    """``web``: how many links away from the start page the crawl goes."""
    max_pages: int = 500
    """``web`` and ``sitemap``: at most this many pages per sync; the rest is reported, not fetched."""
    per_host_per_s: float = 2.0
    """``web`` and ``sitemap``: requests per second to one host."""
    ref: str = "HEAD"
    """``git``: the branch or tag to follow."""
    space: str = ""
    """``confluence``: the space key whose pages are synced."""
    api_url: str = ""
    """``notion``: the API's address when not ``https://api.notion.com`` (a proxy)."""
    token_env: str = ""
    """``confluence``, ``notion``: the environment variable holding the API token (``email:token`` for Confluence
    Cloud, a personal access token or integration secret otherwise). Only ``SOURCE_*`` names: a source must never
    make Lorebot send its own secrets (``SLACK_BOT_TOKEN``, ``LLM_API_KEY``, …) to a server an admin chose."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceOptions:
        """Options as stored; names this version does not know are ignored."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data}).checked()

    def checked(self) -> SourceOptions:
        """This, if every option is in range; raises :class:`SourceError` otherwise."""
        for name, (low, high) in OPTION_LIMITS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise SourceError(f"{name.replace('_', '-')} must be between {low:g} and {high:g}, not {value}")
        if len(self.glob) > 200 or "\x00" in self.glob:
            raise SourceError("glob must be at most 200 characters")
        if not re.fullmatch(r"[A-Za-z0-9._/-]{1,100}", self.ref) or self.ref.startswith("-") or ".." in self.ref:
            raise SourceError(f"ref {self.ref!r} is not a plain branch or tag name")
        if not re.fullmatch(r"[A-Za-z0-9_~-]{0,255}", self.space):
            raise SourceError(f"space {self.space!r} is not a Confluence space key")
        if self.api_url and not re.fullmatch(r"https?://[^/@\s]+(/[^\s]*)?", self.api_url):
            raise SourceError(f"api-url must be an http(s) URL without credentials, not {self.api_url!r}")
        if self.token_env and not re.fullmatch(r"SOURCE_[A-Z0-9_]{1,64}", self.token_env):
            raise SourceError(f"token-env must name a SOURCE_* environment variable, not {self.token_env!r}")
        return self


@dataclass(frozen=True, slots=True)
class SyncCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": self.failed,
        }


@dataclass(frozen=True, slots=True)
class Source:
    """A stored source with the status of its last sync."""

    id: int
    kind: SourceKind
    target: str
    scope: str
    every_s: int | None
    options: SourceOptions
    created_by: str
    created_at: datetime
    last_sync_at: datetime | None
    last_status: SyncStatus
    last_error: str
    last_counts: SyncCounts
    revision: str
    next_run_at: datetime | None
    documents: int


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync did. ``failures`` lists ``(uri, reason)`` for the documents that could not be read; when
    ``status`` is ``failed`` the listing itself failed and nothing was changed or removed."""

    source_id: int
    status: SyncStatus
    counts: SyncCounts
    failures: tuple[tuple[str, str], ...] = ()
    error: str = ""
    revision: str = ""
    removals_skipped: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """``"2 added, 1 updated, 9 unchanged, 1 removed, 0 failed"``: what a sync did, for any platform."""
        return ", ".join(f"{n} {what}" for what, n in self.counts.as_json().items())

    def as_json(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "status": self.status,
            **self.counts.as_json(),
            "failures": [{"uri": uri, "error": reason} for uri, reason in self.failures],
            "error": self.error,
            "revision": self.revision,
            "removals_skipped": self.removals_skipped,
            "seconds": round(self.seconds, 3),
        }


def parse_every(text: str | None) -> int | None:
    """``"6h"`` → 21600 seconds (units s, m, h, d); None or empty → no schedule. Raises :class:`SourceError`."""
    if text is None or not text.strip():
        return None
    match = _EVERY.match(text)
    if not match:
        raise SourceError(f"schedule {text!r} is not a number with a unit, such as 30m, 6h or 1d")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2).lower()]
    if not MIN_EVERY_S <= seconds <= MAX_EVERY_S:
        raise SourceError(f"schedule {text!r} must be between 1m and 30d")
    return seconds


def format_every(seconds: int | None) -> str:
    """The shortest exact ``parse_every`` spelling of ``seconds`` (``"manual"`` for no schedule)."""
    if seconds is None:
        return "manual"
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


def parse_kind(text: str) -> SourceKind:
    try:
        return SourceKind(text.strip().lower())
    except ValueError:
        kinds = ", ".join(kind.value for kind in SourceKind)
        raise SourceError(f"unknown source kind {text!r}; use one of {kinds}") from None


def short_error(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
