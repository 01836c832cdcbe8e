"""URL fetching is hostile territory: refused targets never reach the network, limits hold, errors say why."""

from __future__ import annotations

import time

import pytest

from bot.errors import IngestError, UnsafeURLError
from bot.ingest.fetch import fetch_url, redact_credentials
from bot.settings import Settings
from tests.fixtures.http import LocalHTTPServer

LIMIT = 1000


@pytest.fixture
def trusting(http_server: LocalHTTPServer) -> Settings:
    """Settings that allow exactly the local test server (host and port), nothing else private."""
    return Settings(
        _env_file=None, fetch_allowed_hosts=[http_server.host], fetch_timeout_s=1.0, max_document_bytes=LIMIT
    )


async def test_fetches_a_document_from_an_allowed_host(http_server: LocalHTTPServer, trusting: Settings) -> None:
    url = http_server.serve("/doc.md", b"# Hi\n\nThere.", content_type="text/markdown; charset=utf-8")
    fetched = await fetch_url(url, trusting)
    assert (fetched.data, fetched.content_type, fetched.final_url) == (b"# Hi\n\nThere.", "text/markdown", url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/admin",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/router",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "file:///etc/passwd",
        "ftp://example.com/file.txt",
        "gopher://example.com/",
        "javascript:alert(1)",
        "/relative/path",
    ],
)
async def test_non_public_targets_and_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        await fetch_url(url, Settings(_env_file=None))


async def test_the_local_test_server_itself_is_refused_unless_listed(http_server: LocalHTTPServer) -> None:
    url = http_server.serve("/doc.txt", b"hello")
    with pytest.raises(UnsafeURLError, match=r"127\.0\.0\.1, a loopback/private/reserved address"):
        await fetch_url(url, Settings(_env_file=None))
    other_port = Settings(_env_file=None, fetch_allowed_hosts=[f"127.0.0.1:{http_server.port + 1}"])
    with pytest.raises(UnsafeURLError):
        await fetch_url(url, other_port)
    assert http_server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/",
    ],
)
async def test_metadata_endpoints_stay_refused_even_when_private_networks_are_allowed(url: str) -> None:
    settings = Settings(
        _env_file=None, fetch_allow_private=True, fetch_allowed_hosts=["169.254.169.254", "metadata.google.internal"]
    )
    with pytest.raises(UnsafeURLError, match="metadata"):
        await fetch_url(url, settings)


async def test_allow_private_lifts_the_address_check_for_every_host(http_server: LocalHTTPServer) -> None:
    url = http_server.serve("/doc.txt", b"intranet page")
    fetched = await fetch_url(url, Settings(_env_file=None, fetch_allow_private=True))
    assert fetched.data == b"intranet page"


async def test_redirects_are_followed_and_report_the_final_url(
    http_server: LocalHTTPServer,
    trusting: Settings,
) -> None:
    final = http_server.serve("/final.txt", b"arrived")
    http_server.redirect("/middle", "/final.txt", status=301)
    start = http_server.redirect("/start", http_server.url("/middle"))
    fetched = await fetch_url(start, trusting)
    assert (fetched.data, fetched.final_url) == (b"arrived", final)
    assert http_server.requests == ["/start", "/middle", "/final.txt"]


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.5/internal",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::1]:{port}/doc.txt",
        "http://localhost:{port}/doc.txt",
        "http://127.0.0.1:{other_port}/",
        "file:///etc/passwd",
    ],
)
async def test_redirects_to_refused_targets_are_refused(
    http_server: LocalHTTPServer,
    trusting: Settings,
    target: str,
) -> None:
    http_server.serve("/doc.txt", b"secret")
    start = http_server.redirect("/go", target.format(port=http_server.port, other_port=http_server.port + 1))
    with pytest.raises(UnsafeURLError):
        await fetch_url(start, trusting)
    assert http_server.requests == ["/go"]


async def test_a_posted_query_is_answered_but_never_redirected(
    http_server: LocalHTTPServer, trusting: Settings
) -> None:
    answer = http_server.serve("/v1/query", b'{"results": []}', content_type="application/json")
    assert (await fetch_url(answer, trusting, json_body={"page_size": 100})).data == b'{"results": []}'
    http_server.serve("/elsewhere", b"{}", content_type="application/json")
    moved = http_server.redirect("/v1/moved", "/elsewhere", status=307)
    with pytest.raises(IngestError, match="redirected a query"):
        await fetch_url(moved, trusting, json_body={"page_size": 100})
    assert http_server.requests == ["/v1/query", "/v1/moved"]


async def test_redirect_loops_stop_at_the_limit(http_server: LocalHTTPServer, trusting: Settings) -> None:
    url = http_server.redirect("/loop", "/loop")
    with pytest.raises(IngestError, match="redirected more than 5 times"):
        await fetch_url(url, trusting)
    assert len(http_server.requests) == trusting.fetch_max_redirects + 1


async def test_oversize_body_is_refused_from_content_length_before_reading(
    http_server: LocalHTTPServer,
    trusting: Settings,
) -> None:
    url = http_server.serve("/big.txt", b"x" * (LIMIT + 1))
    with pytest.raises(IngestError, match=f"is {LIMIT + 1} bytes, more than the {LIMIT}-byte limit"):
        await fetch_url(url, trusting)


async def test_oversize_body_without_content_length_is_cut_off_while_streaming(
    http_server: LocalHTTPServer,
    trusting: Settings,
) -> None:
    url = http_server.serve("/stream.txt", b"y" * (50 * LIMIT), send_length=False)
    with pytest.raises(IngestError, match=f"sent more than the {LIMIT}-byte limit"):
        await fetch_url(url, trusting)


@pytest.mark.parametrize("when", ["before_headers", "after_headers"])
async def test_a_slow_server_times_out_within_the_deadline(
    http_server: LocalHTTPServer,
    trusting: Settings,
    when: str,
) -> None:
    url = http_server.stall("/slow", when=when)
    started = time.monotonic()
    with pytest.raises(IngestError, match=r"t(imed out|ook longer)"):
        await fetch_url(url, trusting)
    assert time.monotonic() - started < trusting.fetch_timeout_s + 1.0


@pytest.mark.parametrize(
    ("status", "content_type", "message"),
    [
        (404, "text/plain", "answered HTTP 404"),
        (500, "text/plain", "answered HTTP 500"),
        (200, "image/png", "content type image/png"),
        (200, "application/zip", "content type application/zip"),
    ],
)
async def test_http_errors_and_unsupported_content_types_are_refused(
    http_server: LocalHTTPServer,
    trusting: Settings,
    status: int,
    content_type: str,
    message: str,
) -> None:
    url = http_server.serve("/thing", b"data", content_type=content_type, status=status)
    with pytest.raises(IngestError, match=message):
        await fetch_url(url, trusting)


async def test_unresolvable_hosts_are_reported() -> None:
    with pytest.raises(IngestError, match="cannot resolve host"):
        await fetch_url("http://no-such-host.invalid/", Settings(_env_file=None))


async def test_urls_with_credentials_are_refused_before_any_request_and_the_secret_is_not_repeated(
    http_server: LocalHTTPServer, trusting: Settings
) -> None:
    http_server.serve("/doc.txt", b"hello")
    with pytest.raises(UnsafeURLError, match="credentials") as refused:
        await fetch_url(f"http://alice:s3cret@{http_server.host}/doc.txt", trusting)
    assert str(refused.value) == (
        f"http://***@{http_server.host}/doc.txt holds credentials (user:password@); they would be stored and "
        "shown with the document, so such URLs are refused: put the document somewhere readable without them"
    )
    redirect = http_server.redirect("/moved", f"http://bob:hunter2@{http_server.host}/doc.txt")
    with pytest.raises(UnsafeURLError, match="credentials") as refused_hop:
        await fetch_url(redirect, trusting)
    assert "hunter2" not in str(refused_hop.value)
    assert http_server.requests == ["/moved"]


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("http://alice:s3cret@kb.example/a", "http://***@kb.example/a"),
        ("https://token@kb.example", "https://***@kb.example"),
        ("HTTP://a:b@c:8080/x?y=@z", "HTTP://***@c:8080/x?y=@z"),
        ("see http://u:p@h/x and ftp://v:q@h/y", "see http://***@h/x and ftp://***@h/y"),
        ("https://kb.example/a@b", "https://kb.example/a@b"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
    ],
)
def test_credentials_are_redacted_from_urls_in_any_text(text: str, redacted: str) -> None:
    assert redact_credentials(text) == redacted
