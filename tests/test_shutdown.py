"""Graceful shutdown: the in-flight tracker, and SIGTERM on a real ``lorebot serve local`` process with an
answer in flight (real Postgres, real embeddings, the fake LLM answering slowly over real HTTP)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bot.domain import Actor
from bot.errors import ShuttingDown
from bot.inflight import InFlight
from bot.ops.lifecycle import run_service
from bot.service import Lorebot
from bot.settings import Settings
from tests.fixtures.llm import FakeLLM
from tests.fixtures.net import unused_port

ADMIN = Actor("local", "ops", "Ops", is_admin=True)
HOURS = "The support desk is open Monday to Friday from 9am to 6pm and on Saturdays from 10am to 2pm."
LLM_DELAY_S = 3.0
GRACE_S = 15.0
STARTUP_TIMEOUT_S = 180.0


# --- the tracker ---------------------------------------------------------------------------------------------


async def test_drain_waits_for_requests_in_flight_and_refuses_new_ones() -> None:
    inflight = InFlight()
    entered, release = asyncio.Event(), asyncio.Event()

    async def request() -> str:
        async with inflight.track():
            entered.set()
            await release.wait()
        return "delivered"

    answering = asyncio.create_task(request())
    await entered.wait()
    draining = asyncio.create_task(inflight.drain(timeout=10))
    await asyncio.wait_for(wait_until(lambda: not inflight.accepting), 5)

    with pytest.raises(ShuttingDown):
        async with inflight.track():
            pytest.fail("a new request must not start while draining")
    assert not draining.done() and inflight.count == 1

    release.set()
    assert await answering == "delivered"
    assert await draining is True and inflight.count == 0


async def test_drain_gives_up_after_its_timeout_with_requests_still_running() -> None:
    inflight = InFlight()
    entered, release = asyncio.Event(), asyncio.Event()

    async def stuck() -> None:
        async with inflight.track():
            entered.set()
            await release.wait()

    task = asyncio.create_task(stuck())
    await entered.wait()

    assert await inflight.drain(timeout=0.05) is False
    assert inflight.count == 1
    release.set()
    await task


async def test_a_failing_request_still_leaves_the_tracker() -> None:
    inflight = InFlight()
    with pytest.raises(RuntimeError):
        async with inflight.track():
            raise RuntimeError("boom")
    assert inflight.count == 0
    assert await inflight.drain(timeout=0) is True


async def wait_until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


# --- run_service in process ---------------------------------------------------------------------------------


@pytest.fixture
def service_settings(settings: Settings, fake_llm: FakeLLM, embedder) -> Settings:
    """Settings for :func:`run_service` (the embedder fixture has loaded the model into the process cache)."""
    return settings.model_copy(update={"llm_base_url": fake_llm.base_url, "health_port": 0, "shutdown_grace_s": 10})


async def test_a_crashing_connector_ends_the_service_with_its_error(service_settings: Settings) -> None:
    async def crashing(service: Lorebot, inflight: InFlight) -> None:
        raise RuntimeError("token rejected")

    with pytest.raises(RuntimeError, match="token rejected"):
        await asyncio.wait_for(run_service(service_settings, crashing), 60)


async def test_sigterm_gives_a_self_draining_connector_the_grace_period_to_finish(service_settings: Settings) -> None:
    events: list[str] = []
    serving = asyncio.Event()

    async def self_draining(service: Lorebot, inflight: InFlight) -> None:
        serving.set()
        try:
            await asyncio.Event().wait()
        finally:  # like the Slack runner: finish answers after being cancelled, then use the pool one last time
            events.append(f"documents={len(await service.list_documents(ADMIN, ['default']))}")

    running = asyncio.create_task(run_service(service_settings, self_draining))
    await asyncio.wait_for(serving.wait(), 60)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(running, 30)

    assert events == ["documents=0"]


# --- SIGTERM on a real process -------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def status_of(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return None


@pytest.fixture
async def knowledge(settings: Settings, embedder) -> Settings:
    """The test database with one document, added through the service."""
    service = await Lorebot.start(settings.model_copy(update={"llm_base_url": "http://unused/v1"}), embedder=embedder)
    try:
        await service.add_text(ADMIN, HOURS, title="Support hours", source_uri="wiki:hours")
    finally:
        await service.close()
    return settings


@pytest.fixture
def served(knowledge: Settings, fake_llm: FakeLLM, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, str, str]]:
    """``lorebot serve local`` as a subprocess: (process, API URL, health URL)."""
    api_port, health_port = unused_port(), unused_port()
    env = {
        **os.environ,
        "DATABASE_URL": knowledge.database_url.get_secret_value(),
        "DATA_DIR": str(tmp_path / "data"),
        "LLM_BASE_URL": fake_llm.base_url,
        "LLM_MODEL": "fake-model",
        "LOCAL_API_HOST": "127.0.0.1",
        "LOCAL_API_PORT": str(api_port),
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": str(health_port),
        "SHUTDOWN_GRACE_S": str(GRACE_S),
    }
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", "from lorebot.cli import app; app()", "serve", "local"],
        cwd=tmp_path,  # no developer .env
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    health = f"http://127.0.0.1:{health_port}/healthz"
    try:
        wait_for(lambda: process.poll() is not None or status_of(health) == 200, STARTUP_TIMEOUT_S, "/healthz")
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        yield process, f"http://127.0.0.1:{api_port}/ask", health
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        log.close()


def test_sigterm_finishes_the_answer_in_flight_refuses_new_questions_and_exits_0(
    served: tuple[subprocess.Popen, str, str], fake_llm: FakeLLM
) -> None:
    process, ask_url, health_url = served
    fake_llm.delay = LLM_DELAY_S
    fake_llm.reply("On Saturdays from 10am to 2pm [1].")
    result: dict[str, httpx.Response] = {}
    question = {"question": "When is support open on Saturday?", "user": "max"}
    asking = threading.Thread(target=lambda: result.setdefault("r", httpx.post(ask_url, json=question, timeout=60)))
    asking.start()
    fake_llm.wait_for_requests(1, timeout=60)  # the answer is now being generated

    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    wait_for(lambda: status_of(health_url) == 503, 10, "/healthz to report draining")
    refused = httpx.post(ask_url, json={"question": "And on Sunday?", "user": "eve"}, timeout=10)
    asking.join(60)

    assert refused.status_code == 503 and refused.json()["reason"] == "restarting"
    answered = result["r"]
    assert answered.status_code == 200
    assert answered.json()["answer"] == "On Saturdays from 10am to 2pm [1]."
    assert [c["source_uri"] for c in answered.json()["citations"]] == ["wiki:hours"]
    assert process.wait(timeout=GRACE_S + 10) == 0
    assert time.monotonic() - signalled < GRACE_S
    assert len(fake_llm.chat_requests) == 1  # the refused question never reached the model
