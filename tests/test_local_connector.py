"""The local connector: the HTTP JSON API (``lorebot serve local``) over real HTTP and the terminal chat, both
against the real service (Postgres, MiniLM) and the fake LLM."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from rich.console import Console

from bot.domain import Actor
from bot.inflight import InFlight
from bot.service import Lorebot
from bot.settings import Settings
from connectors.local.api import MAX_NAME_CHARS, build_app
from connectors.local.chat import run_chat
from tests.fixtures.llm import FakeLLM

ADMIN = Actor("local", "ops", "Ops", is_admin=True)
HOURS = "The support desk is open Monday to Friday from 9am to 6pm and on Saturdays from 10am to 2pm."
SATURDAY = "When is support open on Saturday?"
DEADLINE_S = 3.0


@pytest.fixture
async def service(settings: Settings, fake_llm: FakeLLM, embedder) -> AsyncIterator[Lorebot]:
    settings = settings.model_copy(
        update={
            "llm_base_url": fake_llm.base_url,
            "llm_model": "fake-model",
            "rate_limit_per_minute": 3,
            "llm_timeout_s": 5.0,
            "llm_deadline_s": DEADLINE_S,
        }
    )
    service = await Lorebot.start(settings, embedder=embedder)
    await service.add_text(ADMIN, HOURS, title="Support hours", source_uri="wiki:hours")
    yield service
    await service.close()


@pytest.fixture
def inflight() -> InFlight:
    return InFlight()


@pytest.fixture
async def api(service: Lorebot, inflight: InFlight) -> AsyncIterator[httpx.AsyncClient]:
    runner = web.AppRunner(build_app(service, inflight))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    await runner.cleanup()


# --- HTTP API ------------------------------------------------------------------------------------------------


async def test_ask_returns_the_answer_with_its_citations(api: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    fake_llm.reply("On Saturdays from 10am to 2pm [1].")

    response = await api.post("/ask", json={"question": SATURDAY, "user": "max"})

    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == "On Saturdays from 10am to 2pm [1]." and body["found"] is True
    assert isinstance(body["message_id"], int)
    assert [(c["number"], c["title"], c["source_uri"]) for c in body["citations"]] == [
        (1, "Support hours", "wiki:hours")
    ]


async def test_a_conversation_id_carries_history_to_the_follow_up(api: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    fake_llm.reply("On Saturdays from 10am to 2pm [1].", "support desk hours Sunday", "Closed on Sundays [1].")
    await api.post("/ask", json={"question": SATURDAY, "user": "max", "conversation": "c1"})

    response = await api.post("/ask", json={"question": "And on Sunday?", "user": "max", "conversation": "c1"})

    assert response.status_code == 200
    answer_request = fake_llm.chat_requests[-1]["messages"]
    assert any(SATURDAY in m["content"] for m in answer_request)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b'["a list"]', "JSON object"),
        (b'{"question": 42}', '"question" must be a string'),
        (b'{"question": "hi", "user": ["x"]}', '"user" must be a string'),
        (b'{"question": "hi", "user": "' + b"u" * (MAX_NAME_CHARS + 1) + b'"}', '"user" must be a string'),
        (b'{"question": "   "}', "empty"),
        (b'{"question": "' + b"why " * 2000 + b'"}', "too long"),
        (b'{"question": "\\ud800"}', "not valid Unicode"),
        (b'{"question": "why\\u0000not"}', "NUL"),
        (b'{"question": "hi", "user": "max\\u0000"}', "user id"),
        (b'{"question": "hi", "conversation": "c\\u00001"}', "conversation"),
        (b'{"question": "hi", "user": "\\udc00"}', "user id"),
        (b'{"question": "hi", "request_id": "r\\u00001"}', "event id"),
        (b'{"question": "hi", "request_id": 7}', "request_id"),
        (b'{"question": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)
async def test_malformed_requests_get_400_with_the_reason(
    api: httpx.AsyncClient, fake_llm: FakeLLM, body: bytes, message: str
) -> None:
    response = await api.post("/ask", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert fake_llm.chat_requests == []


async def test_a_repeated_request_id_is_answered_once_and_then_409(api: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    fake_llm.reply("On Saturdays from 10am to 2pm [1].", "On Saturdays from 10am to 2pm [1].")
    request = {"question": SATURDAY, "user": "max", "request_id": "req-1"}

    first = await api.post("/ask", json=request)
    repeated = await api.post("/ask", json=request)
    fresh = await api.post("/ask", json={**request, "request_id": "req-2"})

    assert (first.status_code, repeated.status_code, fresh.status_code) == (200, 409, 200)
    assert repeated.json()["reason"] == "already received"
    assert len(fake_llm.chat_requests) == 2


async def test_a_body_over_the_size_limit_is_refused_with_413(api: httpx.AsyncClient) -> None:
    response = await api.post("/ask", content=b'{"question": "' + b"x" * (2 * 1024 * 1024) + b'"}')

    assert response.status_code == 413


async def test_an_llm_outage_is_503_with_an_error_id_and_no_details(api: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    fake_llm.fail_with(500)

    response = await api.post("/ask", json={"question": SATURDAY})

    assert response.status_code == 503
    body = response.json()
    assert body["reason"] == "language model unavailable"
    assert body["error_id"] in body["error"] and fake_llm.base_url not in body["error"]


@pytest.mark.parametrize(
    "fault",
    ["keep-alive", "malformed", "wrong-shape", "done-only", "json-as-sse", "429-retry-after-55"],
)
async def test_a_broken_llm_is_503_language_model_unavailable_within_the_deadline(
    api: httpx.AsyncClient, fake_llm: FakeLLM, fault: str
) -> None:
    if fault == "429-retry-after-55":
        fake_llm.fail_with(429, retry_after=55)
    else:
        fake_llm.stream_fault(fault)  # type: ignore[arg-type]

    started = time.monotonic()
    response = await api.post("/ask", json={"question": SATURDAY})

    assert time.monotonic() - started < DEADLINE_S + 2
    assert response.status_code == 503
    assert response.json()["reason"] == "language model unavailable"
    assert fake_llm.chat_requests


async def test_asking_too_often_is_429_with_retry_after(api: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    statuses = [(await api.post("/ask", json={"question": SATURDAY, "user": "eager"})).status_code for _ in range(3)]
    response = await api.post("/ask", json={"question": SATURDAY, "user": "eager"})

    assert statuses == [200, 200, 200]
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1


async def test_questions_are_refused_with_503_while_draining(
    api: httpx.AsyncClient, inflight: InFlight, fake_llm: FakeLLM
) -> None:
    inflight.stop_accepting()

    response = await api.post("/ask", json={"question": SATURDAY})

    assert response.status_code == 503 and response.json()["reason"] == "restarting"
    assert fake_llm.chat_requests == []


# --- terminal chat -------------------------------------------------------------------------------------------


def chat_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, force_terminal=False, color_system=None), out


async def test_chat_streams_answers_with_numbered_sources_and_keeps_history(
    service: Lorebot, fake_llm: FakeLLM
) -> None:
    console, out = chat_console()
    fake_llm.reply("On Saturdays from 10am to 2pm [1].", "support desk hours Sunday", "It is closed on Sunday [1].")
    typed = io.StringIO(f"{SATURDAY}\n\nAnd on Sunday?\nexit\nnever asked\n")

    await run_chat(service, ADMIN, ("default",), console, stream=typed)

    text = out.getvalue()
    assert "On Saturdays from 10am to 2pm [1]." in text and "It is closed on Sunday [1]." in text
    assert text.count("[1] Support hours — wiki:hours") == 2
    assert len(fake_llm.chat_requests) == 3  # answer, condensed follow-up query, answer; nothing after "exit"
    assert any(SATURDAY in m["content"] for m in fake_llm.chat_requests[1]["messages"])


async def test_piped_chat_ends_every_answer_with_a_newline(service: Lorebot, fake_llm: FakeLLM) -> None:
    console, out = chat_console()
    fake_llm.reply("I could not find this in the knowledge base.", "On Saturdays from 10am to 2pm [1].")
    typed = io.StringIO(f"Who founded the company?\n{SATURDAY}\n")

    await run_chat(service, ADMIN, ("default",), console, stream=typed)

    # the typed questions are not echoed from a pipe: each answer follows its prompt, then a new line begins
    assert out.getvalue().splitlines()[1:3] == [
        "you › I could not find this in the knowledge base.",
        "you › On Saturdays from 10am to 2pm [1].",
    ]


async def test_chat_shows_failures_and_keeps_going(service: Lorebot, fake_llm: FakeLLM) -> None:
    console, out = chat_console()
    fake_llm.fail_with(500, times=2)  # the client retries once
    fake_llm.reply("On Saturdays from 10am to 2pm [1].")
    typed = io.StringIO(f"{SATURDAY}\n{'why ' * 2000}\n{SATURDAY}\n")

    await run_chat(service, ADMIN, ("default",), console, stream=typed)

    text = out.getvalue()
    assert "Sorry, I can't answer right now: language model unavailable" in text
    assert "too long" in text
    assert "On Saturdays from 10am to 2pm [1]." in text
