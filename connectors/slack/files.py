"""Fetching a file a user shared with the bot: ``files.info``, then a download authenticated with the bot token.

Slack answers a download without a valid token with status 200 and its HTML login page, so a 200 is not proof:
an HTML body for a file that is not HTML is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import IngestError
from bot.settings import Settings

log = logging.getLogger(__name__)

UNAVAILABLE_MODES = frozenset({"external", "tombstone", "hidden_by_limit"})
"""File modes whose bytes Slack does not hold (links to Drive etc., deleted, beyond the plan's history)."""
HTML_MARKERS = (b"<!doctype html", b"<html")
HTML_TYPES = frozenset({"html", "text/html"})
DOWNLOAD_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class SharedFile:
    file_id: str
    name: str
    mimetype: str
    data: bytes
    permalink: str


async def fetch_file(client: AsyncWebClient, settings: Settings, api_url: str, file_id: str) -> SharedFile:
    """Look the file up and download it; raises :class:`IngestError` when it is unavailable, too big or fake."""
    try:
        info = (await client.files_info(file=file_id))["file"]
    except SlackApiError as e:
        raise IngestError(f"Slack refused files.info for {file_id}: {e.response.get('error')}") from e
    name = info.get("name") or info.get("title") or file_id
    if info.get("mode") in UNAVAILABLE_MODES:
        raise IngestError(f"{name} is not stored in Slack (mode {info.get('mode')}); upload the file itself")
    size = int(info.get("size") or 0)
    if size > settings.max_document_bytes:
        raise IngestError(f"{name} is {size} bytes; the limit is {settings.max_document_bytes}")
    url = info.get("url_private_download") or info.get("url_private")
    if not url:
        raise IngestError(f"{name} has no download address")
    data = await _download(url, client.token or "", settings, api_url)
    declared = f"{info.get('mimetype', '')} {info.get('filetype', '')}".lower().split()
    if _looks_like_html(data) and not HTML_TYPES.intersection(declared):
        raise IngestError(f"downloading {name} returned an HTML page instead of the file (token or scope missing?)")
    log.info("downloaded slack file %s (%d bytes)", file_id, len(data))
    return SharedFile(file_id, name, info.get("mimetype") or "", data, info.get("permalink") or "")


async def _download(url: str, token: str, settings: Settings, api_url: str) -> bytes:
    if not token_may_go_to(url, api_url):
        raise IngestError(f"refusing to send the bot token to {urlsplit(url).hostname}")
    timeout = aiohttp.ClientTimeout(total=settings.fetch_timeout_s)
    limit = settings.max_document_bytes
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as response,
        ):
            if response.status != 200:
                raise IngestError(f"file download failed with HTTP {response.status}")
            data = bytearray()
            async for piece in response.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
                data.extend(piece)
                if len(data) > limit:
                    raise IngestError(f"file is larger than the limit of {limit} bytes")
            return bytes(data)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise IngestError(f"file download failed: {type(e).__name__}") from e


def token_may_go_to(url: str, api_url: str) -> bool:
    """The bot token goes only to the API's host or its sibling hosts (``files.slack.com`` for ``slack.com``)."""
    target, api = urlsplit(url), urlsplit(api_url)
    if not target.hostname or not api.hostname:
        return False
    if target.hostname == api.hostname:
        return target.scheme in ("https", api.scheme)
    domain = ".".join(api.hostname.split(".")[-2:])
    return target.scheme == "https" and target.hostname.endswith("." + domain)


def _looks_like_html(data: bytes) -> bool:
    return data[:512].lstrip().lower().startswith(HTML_MARKERS)
