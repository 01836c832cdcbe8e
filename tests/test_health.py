"""``/healthz`` up and down (real Postgres, the fake LLM over real HTTP) and ``/metrics`` moving with real use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from bot.domain import Actor, Question
from bot.errors import AnswerError
from bot.ops.health import HealthServer
from bot.ops.metrics import Metrics
from bot.service import Lorebot
from bot.settings import Settings
from tests.fixtures.llm import FakeLLM
from tests.fixtures.net import unused_port

ADMIN = Actor("local", "ops", "Ops", is_admin=True)
MEMBER = Actor("slack", "U1", "Max")
HOURS = "The support desk is open Monday to Friday from 9am to 6pm and on Saturdays from 10am to 2pm."

StartHealth = Callable[..., Awaitable[HealthServer]]


@pytest.fixture
def health_settings(settings: Settings, fake_llm: FakeLLM) -> Settings:
    return settings.model_copy(
        update={
            "llm_base_url": fake_llm.base_url,
            "health_host": "127.0.0.1",
            "health_port": 0,
            "health_check_timeout_s": 1.0,
        }
    )


@pytest.fixture
async def start_health(health_settings: Settings) -> AsyncIterator[StartHealth]:
    servers: list[HealthServer] = []

    async def start(pool: AsyncConnectionPool, metrics: Metrics | None = None, **overrides) -> HealthServer:
        draining = overrides.pop("draining", lambda: False)
        settings = health_settings.model_copy(update=overrides)
        server = HealthServer(settings, pool, metrics or Metrics(), draining=draining)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


async def get(server: HealthServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"http://127.0.0.1:{server.port}{path}")


async def test_healthz_is_ok_when_database_and_llm_answer(start_health: StartHealth, pool) -> None:
    server = await start_health(pool)

    response = await get(server, "/healthz")

    assert response.status_code == 200
    assert response.json() == {"db": "ok", "llm": "ok"}


async def test_healthz_is_503_naming_the_llm_when_it_is_unreachable(start_health: StartHealth, pool) -> None:
    server = await start_health(pool, llm_base_url=f"http://127.0.0.1:{unused_port()}/v1")

    response = await get(server, "/healthz")

    assert response.status_code == 503
    assert response.json() == {"db": "ok", "llm": "unreachable"}


async def test_healthz_reports_a_hanging_llm_within_its_timeout(start_health: StartHealth, pool) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # hold the connection open until the client gives up

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        server = await start_health(pool, llm_base_url=f"http://127.0.0.1:{port}/v1", health_check_timeout_s=0.5)
        async with asyncio.timeout(5):
            response = await get(server, "/healthz")
    finally:
        silent.close()

    assert response.status_code == 503
    assert response.json() == {"db": "ok", "llm": "timeout"}


async def test_healthz_is_503_naming_the_database_when_it_is_gone(
    start_health: StartHealth, pool, pg_server_uri: str, database_url: str
) -> None:
    server = await start_health(pool)
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(pg_server_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))

    response = await get(server, "/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["llm"] == "ok" and body["db"] != "ok"


async def test_healthz_turns_503_while_the_process_drains(start_health: StartHealth, pool) -> None:
    server = await start_health(pool, draining=lambda: True)

    response = await get(server, "/healthz")

    assert response.status_code == 503
    assert response.json() == {"db": "ok", "llm": "ok", "status": "draining"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def metered(health_settings: Settings, embedder, metrics: Metrics) -> AsyncIterator[Lorebot]:
    service = await Lorebot.start(health_settings, embedder=embedder, observer=metrics)
    yield service
    await service.close()


async def test_metrics_count_questions_latency_ingestion_and_feedback(
    start_health: StartHealth, metered: Lorebot, metrics: Metrics, fake_llm: FakeLLM
) -> None:
    server = await start_health(metered.pool, metrics)
    before = samples((await get(server, "/metrics")).text)
    await metered.add_text(ADMIN, HOURS, title="Support hours", source_uri="wiki:hours")
    fake_llm.reply("On Saturdays from 10am to 2pm [1].")

    answer = await metered.ask(Question("When is support open on Saturday?", MEMBER, ("default",)))
    assert answer.message_id is not None
    await metered.record_feedback(MEMBER, answer.message_id, 1)

    after = samples((await get(server, "/metrics")).text)
    assert after[("lorebot_questions_total", (("found", "true"), ("platform", "slack")))] == 1
    assert after[("lorebot_answer_latency_seconds_count", ())] == 1
    assert after[("lorebot_retrieval_latency_seconds_count", ())] == 1
    assert after[("lorebot_ingested_documents_total", (("status", "added"),))] == 1
    assert after[("lorebot_ingested_chunks_total", ())] >= 1
    assert after[("lorebot_feedback_total", (("score", "up"),))] == 1
    assert ("lorebot_questions_total", (("found", "true"), ("platform", "slack"))) not in before


async def test_metrics_count_llm_errors_by_reason(metered: Lorebot, metrics: Metrics, fake_llm: FakeLLM) -> None:
    await metered.add_text(ADMIN, HOURS, title="Support hours", source_uri="wiki:hours")
    fake_llm.fail_with(500)

    with pytest.raises(AnswerError):
        await metered.ask(Question("When is support open on Saturday?", MEMBER, ("default",)))

    after = samples(metrics.render().decode())
    assert after[("lorebot_llm_errors_total", (("reason", "http_5xx"),))] == 1
    assert ("lorebot_questions_total", (("found", "true"), ("platform", "slack"))) not in after


async def test_metrics_count_not_found_answers_and_searches(metered: Lorebot, metrics: Metrics) -> None:
    await metered.ask(Question("What is the airspeed of an unladen swallow?", MEMBER, ("default",)))
    await metered.search(MEMBER, "swallow", ("default",))

    after = samples(metrics.render().decode())
    assert after[("lorebot_questions_total", (("found", "false"), ("platform", "slack")))] == 1
    assert after[("lorebot_retrieval_latency_seconds_count", ())] == 2
