"""Fetch a document from a URL an admin typed into chat: hostile territory, so every step is guarded.

- Only ``http``/``https``. The host is resolved here and EVERY address it resolves to must be public; loopback,
  private, link-local, shared (CGNAT), reserved, multicast and unspecified addresses are refused, as are IPv4
  literals in odd forms (``http://2130706433/`` resolves to 127.0.0.1 and is refused like it).
- DNS rebinding: the request goes to the address that was checked, not to the name. The URL's host is replaced by
  that IP, the ``Host`` header carries the original ``host[:port]`` and, for https, the ``sni_hostname`` request
  extension makes TLS send the name and verify the certificate against it. A second DNS answer is never used.
  Environment proxies are ignored (``trust_env=False``) so nothing else resolves the name either.
- Redirects are followed by hand, at most ``fetch_max_redirects`` times, and every hop is checked again.
- One deadline (``fetch_timeout_s``) covers resolving, connecting, redirects and the whole body; the body is
  streamed and cut off at ``max_document_bytes`` (refused before reading when ``Content-Length`` says so).
- Only text, HTML, Markdown, PDF, XML (sitemaps), JSON (APIs of sources) and ``application/octet-stream`` (sniffed
  later by the loader) are accepted.
- URLs with credentials (``https://user:password@host/``), typed or in a redirect, are refused before any
  request: the URL is the document's source, stored, listed, cited and audited, so its secret would be too.
  Messages show such URLs through :func:`redact_credentials`.

Exceptions for trusted networks: ``fetch_allow_private`` lifts the address check for every host,
``fetch_allowed_hosts`` only for the listed ``host`` / ``host:port`` entries. Cloud metadata endpoints are refused
whatever the settings say.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

import certifi
import httpx

from bot.errors import IngestError, UnsafeURLError
from bot.settings import Settings

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
ALLOWED_CONTENT_TYPES = frozenset(
    {
        "application/pdf",
        "application/x-pdf",
        "application/xhtml+xml",
        "application/xml",
        "application/json",
        "application/octet-stream",
        "",
    }
)
USER_AGENT = "Lorebot/0.1 (+document ingestion)"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")


@dataclass(frozen=True, slots=True)
class Fetched:
    """A downloaded body, its declared content type and the URL it finally came from (after redirects)."""

    data: bytes
    content_type: str
    final_url: str


async def fetch_url(
    url: str, settings: Settings, *, headers: Mapping[str, str] | None = None, json_body: object = None
) -> Fetched:
    """Download ``url`` safely; raises :class:`UnsafeURLError` for refused targets, :class:`IngestError` for
    timeouts (``fetch_timeout_s`` in total), oversize bodies, HTTP errors and unsupported content types.
    ``headers`` (an API's ``Authorization``) go only to ``url``'s own origin, never across a redirect to another.
    With ``json_body`` the request is a POST of that JSON (an API's query endpoint) and a redirect is an error:
    a query is never re-sent, to the same place or another."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.fetch_timeout_s):
            fetched = await _fetch(url, settings, headers or {}, json_body)
    except TimeoutError as e:
        what = redact_credentials(url)
        raise IngestError(f"fetching {what} took longer than {settings.fetch_timeout_s:g} s; gave up") from e
    log.info(
        "fetched host=%s bytes=%d type=%s ms=%d",
        httpx.URL(fetched.final_url).host,
        len(fetched.data),
        fetched.content_type,
        (time.perf_counter() - started) * 1000,
    )
    return fetched


async def _fetch(url: str, settings: Settings, headers: Mapping[str, str], json_body: object) -> Fetched:
    current = start = _parse(url)
    timeout = httpx.Timeout(settings.fetch_timeout_s)
    async with httpx.AsyncClient(
        timeout=timeout, trust_env=False, headers={"User-Agent": USER_AGENT}, verify=_tls_context()
    ) as client:
        for _ in range(settings.fetch_max_redirects + 1):
            address = await check_url(current, settings)
            request = client.build_request(
                "GET" if json_body is None else "POST",
                current.copy_with(host=str(address)),
                json=json_body,
                headers={
                    "Host": current.netloc.decode("ascii"),
                    **(headers if (current.scheme, current.netloc) == (start.scheme, start.netloc) else {}),
                },
                extensions={"sni_hostname": current.host} if current.scheme == "https" else {},
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.TimeoutException as e:
                raise IngestError(f"fetching {current} timed out after {settings.fetch_timeout_s:g} s") from e
            except httpx.HTTPError as e:
                raise IngestError(f"fetching {current} failed: {type(e).__name__}: {e}") from e
            try:
                if response.is_redirect and json_body is not None:
                    raise IngestError(f"{current} redirected a query (HTTP {response.status_code}); not re-sent")
                if response.is_redirect:
                    current = _parse(str(current.join(response.headers["location"])))
                    continue
                if response.status_code != httpx.codes.OK:
                    raise IngestError(f"{current} answered HTTP {response.status_code} {response.reason_phrase}")
                content_type = _content_type(response, current)
                data = await _read_capped(response, settings.max_document_bytes, current)
                return Fetched(data, content_type, str(current))
            finally:
                await response.aclose()
    raise IngestError(f"{url} redirected more than {settings.fetch_max_redirects} times (FETCH_MAX_REDIRECTS)")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The CA bundle, loaded once: httpx builds a context per client otherwise (~30 ms, a crawl's main cost)."""
    return ssl.create_default_context(cafile=certifi.where())


def redact_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it replaced by ``***@``."""
    return _USERINFO.sub(r"\1***@", text)


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise UnsafeURLError(redact_credentials(f"malformed URL {url!r}: {e}")) from e
    if parsed.userinfo:
        raise UnsafeURLError(
            f"{redact_credentials(url.strip())} holds credentials (user:password@); they would be stored and shown "
            "with the document, so such URLs are refused: put the document somewhere readable without them"
        )
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UnsafeURLError(f"only http and https URLs can be fetched, not {parsed.scheme or 'a relative'} URL")
    if not parsed.host:
        raise UnsafeURLError(f"URL {url!r} has no host")
    return parsed


async def check_url(url: httpx.URL, settings: Settings) -> IPAddress:
    """Resolve ``url``'s host and return the address to connect to, if every resolved address may be fetched."""
    host = url.host.lower().rstrip(".")
    port = url.port or DEFAULT_PORTS[url.scheme]
    if host in METADATA_HOSTS:
        raise UnsafeURLError(f"{host} is a cloud metadata endpoint and is never fetched")
    trusted = settings.fetch_allow_private or _listed(host, port, settings.fetch_allowed_hosts)
    addresses = await _resolve(host, port)
    for address in addresses:
        if address in METADATA_ADDRESSES:
            raise UnsafeURLError(f"{host} resolves to {address}, a cloud metadata address; never fetched")
        if not trusted and is_internal(address):
            raise UnsafeURLError(
                f"{host} resolves to {address}, a loopback/private/reserved address; refused "
                "(list the host in FETCH_ALLOWED_HOSTS for a trusted intranet)"
            )
    return addresses[0]


def is_internal(address: IPAddress) -> bool:
    """True for every address that is not plainly public unicast."""
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise IngestError(f"cannot resolve host {host}: {e}") from e
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise IngestError(f"host {host} has no address")
    return addresses


def _listed(host: str, port: int, entries: list[str]) -> bool:
    """``host`` or ``host:port`` (IPv6 as ``[addr]:port``) in ``fetch_allowed_hosts``."""
    for entry in entries:
        entry = entry.strip().lower()
        if entry.startswith("["):
            name, _, rest = entry[1:].partition("]")
            entry_port = rest.removeprefix(":")
        elif entry.count(":") == 1:
            name, _, entry_port = entry.partition(":")
        else:
            name, entry_port = entry, ""
        if name.rstrip(".") == host and (not entry_port or entry_port == str(port)):
            return True
    return False


def _content_type(response: httpx.Response, url: httpx.URL) -> str:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("text/") or content_type in ALLOWED_CONTENT_TYPES:
        return content_type or "application/octet-stream"
    raise IngestError(f"{url} has content type {content_type}; only text, HTML, Markdown and PDF can be added")


async def _read_capped(response: httpx.Response, limit: int, url: httpx.URL) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise IngestError(f"{url} is {int(declared)} bytes, more than the {limit}-byte limit (MAX_DOCUMENT_BYTES)")
    body = bytearray()
    try:
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > limit:
                raise IngestError(f"{url} sent more than the {limit}-byte limit (MAX_DOCUMENT_BYTES); download stopped")
    except httpx.TimeoutException as e:
        raise IngestError(f"reading {url} timed out") from e
    except httpx.HTTPError as e:
        raise IngestError(f"reading {url} failed: {type(e).__name__}: {e}") from e
    return bytes(body)
