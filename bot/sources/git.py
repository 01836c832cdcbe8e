"""``git``: the docs files of a repository (glob) at a branch or tag; the commit is recorded, blob ids are the
change markers, so a file whose blob did not change is not even read.

A repository URL is fetched into a bare cache under ``DATA_DIR/sources`` by a locked-down ``git`` subprocess:
only the ``http``/``https`` transports (never ``file://``, ``ext::`` or other remote helpers), no redirects, no
prompts, no system or user configuration, and the host must pass the same address check as every fetched URL
(so a private host needs ``FETCH_ALLOWED_HOSTS``). A local path (shell operator only) is read in place.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from langchain_core.documents import Document

from bot.errors import IngestError
from bot.ingest.fetch import check_url, redact_credentials
from bot.ingest.loaders import decode_text
from bot.sources.globs import path_filter
from bot.sources.loader import SourceLoader, failed, fetched, load_bytes, unchanged
from bot.sources.model import SourceError

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 300.0
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_ALLOW_PROTOCOL": "http:https",
    "GIT_ASKPASS": "true",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LC_ALL": "C",
}
GIT_OPTIONS = (
    "-c",
    "http.followRedirects=false",
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.http.allow=always",
    "-c",
    "protocol.https.allow=always",
    "-c",
    "core.fsmonitor=false",
)
SYMLINK_MODE = b"120000"
"""A link's blob is its target path, not a document."""
LINE_TYPES = frozenset({"text/markdown", "text/plain"})
"""Files whose loaded text is the file's text, so a chunk's lines can be found in it."""
_REMOTE = re.compile(r"^[^/]*:")
"""A scheme (``https:``, ``file:``, ``ext::``) or scp-like ``host:path``: anything but a plain path."""


@dataclass(frozen=True, slots=True)
class _Blob:
    path: str
    sha: str
    size: int


def is_remote(target: str) -> bool:
    """True for anything that is not a local path: a URL, ``ext::…``, ``host:path`` (scp-like) and the like."""
    return bool(_REMOTE.match(target.strip()))


def check_target(target: str) -> str:
    """A repository target Lorebot will touch: an absolute local path, or an ``http(s)://`` URL without
    credentials. Raises :class:`SourceError` for every other transport (``file://``, ``ext::``, ``ssh://``, …)."""
    target = target.strip()
    if not is_remote(target):
        if not Path(target).expanduser().is_absolute():
            raise SourceError(f"a local repository must be an absolute path, not {target!r}")
        return target
    refused = SourceError(f"only http(s) repository URLs are synced, not {redact_credentials(target)!r}")
    if not target.lower().startswith(("http://", "https://")) or "::" in target:
        raise refused
    try:
        url = httpx.URL(target)
    except (httpx.InvalidURL, ValueError) as e:
        raise refused from e
    if not url.host:
        raise refused
    if url.userinfo:
        raise SourceError("repository URLs with credentials are refused: they would be stored and shown")
    return target


def web_base(target: str) -> str:
    """Where a repository's files are shown (``https://host/org/repo`` for ``…/repo.git``): GitHub, GitLab,
    Gitea and Forgejo all serve ``{base}/blob/{commit}/{path}``."""
    return target.strip().rstrip("/").removesuffix(".git")


class GitLoader(SourceLoader):
    async def alazy_load(self) -> AsyncIterator[Document]:
        target = check_target(self.source.target)
        ref = self.source.options.ref
        if is_remote(target):
            await check_url(httpx.URL(target), self.settings)
            repo = await _fetch(target, ref, self._cache_dir())
            commit = await _git(repo, "rev-parse", "--verify", "FETCH_HEAD^{commit}")
        else:
            repo = Path(target).expanduser()
            if not repo.is_dir():
                raise SourceError(f"{repo} is not a folder")
            commit = await _git(repo, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}")
        self.revision = commit.decode().strip()
        blobs = _blobs(await _git(repo, "ls-tree", "-r", "-l", "-z", self.revision), self.source.options.glob)
        limit = self.source.options.max_pages
        if len(blobs) > limit:
            self.complete = False
            self.notes.append(f"{len(blobs)} files match; only the first {limit} (max-pages) are synced")
        for blob in blobs[:limit]:
            yield await self._read(repo, target, blob)

    async def _read(self, repo: Path, target: str, blob: _Blob) -> Document:
        uri = document_uri(target, self.source.options.ref, blob.path)
        if self.is_unchanged(uri, blob.sha):
            return unchanged(uri, blob.sha)
        limit = self.settings.max_document_bytes
        if blob.size > limit:
            return failed(uri, f"{blob.path} is {blob.size} bytes, more than the {limit}-byte limit")
        try:
            data = await _git(repo, "cat-file", "blob", blob.sha)
            loaded = await load_bytes(data, filename=Path(blob.path).name)
        except (IngestError, SourceError) as e:
            return failed(uri, str(e))
        if not is_remote(target) or loaded.mime_type not in LINE_TYPES:
            return fetched(uri, blob.sha, loaded)
        decoded = decode_text(data)
        stripped_lines = decoded[: len(decoded) - len(decoded.lstrip())].count("\n")
        plain = "?plain=1" if loaded.mime_type == "text/markdown" else ""  # line anchors on the source, not the render
        blob_url = f"{web_base(target)}/blob/{self.revision}/{blob.path}{plain}"
        return fetched(uri, blob.sha, loaded, blob_url=blob_url, line_offset=stripped_lines)

    def _cache_dir(self) -> Path:
        return self.settings.data_dir / "sources" / f"git-{self.source.id}.git"


def document_uri(target: str, ref: str, path: str) -> str:
    """A file's stable source URI: the web page of the file at the followed ref (local repositories: the file)."""
    if is_remote(target):
        return f"{web_base(target)}/blob/{ref}/{path}"
    return (Path(target).expanduser().resolve() / path).as_uri()


def _blobs(listing: bytes, glob: str) -> list[_Blob]:
    wanted = path_filter(glob)
    blobs = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        mode, kind, sha, size = meta.split()
        name = path.decode("utf-8", "replace")
        if kind == b"blob" and mode != SYMLINK_MODE and size.isdigit() and wanted(name):
            blobs.append(_Blob(name, sha.decode(), int(size)))
    return sorted(blobs, key=lambda blob: blob.path)


async def _fetch(url: str, ref: str, cache: Path) -> Path:
    """Fetch ``ref`` of ``url`` into the bare ``cache`` repository (created on first use)."""
    if not (cache / "HEAD").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        await _git(cache, "init", "--bare", "--quiet")
    await _git(cache, "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--", url, ref)
    return cache


async def _git(repo: Path, *args: str) -> bytes:
    """Run ``git`` in ``repo``; its stdout, or :class:`SourceError` with git's own complaint."""
    try:
        process = await asyncio.create_subprocess_exec(
            "git",
            *GIT_OPTIONS,
            "-C",
            str(repo),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=GIT_ENV,
        )
    except OSError as e:
        raise SourceError(f"cannot run git: {e}") from e
    try:
        out, err = await asyncio.wait_for(process.communicate(), GIT_TIMEOUT_S)
    except TimeoutError as e:
        process.kill()
        await process.wait()
        raise SourceError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:g} s") from e
    if process.returncode != 0:
        complaint = redact_credentials(err.decode("utf-8", "replace").strip().splitlines()[-1:][0] if err else "")
        raise SourceError(f"git {args[0]} failed: {complaint or f'exit status {process.returncode}'}")
    return out
