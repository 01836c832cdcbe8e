"""The adapter registry on real Postgres, promotion and rollback through a fake vLLM on loopback (real HTTP),
the audit trail (who, when), the `lorebot sft status|promote|rollback` commands, and the admins' notice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from bot.domain import Actor, Question
from bot.embeddings import Embedder
from bot.errors import NotFound, StorageError
from bot.notices import Notice
from bot.service import Lorebot
from bot.settings import Settings
from bot.sft.lora_runtime import LoraRuntime, ServingError
from bot.sft.registry import ServingTarget, promote, rollback
from bot.sft_cli import sft_app
from bot.storage import adapters as store
from tests.test_vllm_lora import FakeVLLM, running_app, running_fake_vllm

runner = CliRunner()


@pytest.fixture
def vllm() -> Iterator[FakeVLLM]:
    with running_fake_vllm(FakeVLLM()) as fake:
        yield fake


async def _register(pool: AsyncConnectionPool, tmp_path: Path, name: str, *, metrics: dict | None = None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    assert await store.register(
        pool, name=name, base_model="Qwen/Qwen3-4B-Instruct-2507", path=str(folder), parent=None,
        dataset_hash="ab" * 32, dataset_size=12, train_config={"learning_rate": "0.0002"}, actor="cli:ops",
    )  # fmt: skip
    if metrics:
        await store.set_metrics(pool, name, metrics)
    return folder


def _target(fake: FakeVLLM, tmp_path: Path) -> ServingTarget:
    return ServingTarget(LoraRuntime(fake.base_url), "lorebot", tmp_path / "data" / "adapters" / "serving")


async def test_promotion_loads_the_adapter_then_records_who_and_when(
    pool: AsyncConnectionPool, vllm: FakeVLLM, tmp_path: Path
) -> None:
    first = await _register(pool, tmp_path, "c1")
    second = await _register(pool, tmp_path, "c2")
    target = _target(vllm, tmp_path)

    await promote(pool, "c1", "cli:alice", target)
    change = await promote(pool, "c2", "cli:bob", target)

    assert vllm.loras == {"lorebot": str(second)}
    assert (change.previous.name, change.current.name) == ("c1", "c2")
    rows = {row.name: row for row in await store.adapters(pool)}
    assert (rows["c1"].status, rows["c2"].status) == ("retired", "serving")
    assert rows["c2"].promoted_by == "cli:bob" and rows["c2"].promoted_at is not None
    assert target.link.resolve() == second.resolve()
    events = [(e.adapter, e.action, e.actor) for e in await store.events(pool)]
    assert events[:2] == [("c2", "promoted", "cli:bob"), ("c1", "promoted", "cli:alice")]
    assert first.is_dir()


async def test_promoting_the_serving_adapter_again_reapplies_it_without_a_new_event(
    pool: AsyncConnectionPool, vllm: FakeVLLM, tmp_path: Path
) -> None:
    folder = await _register(pool, tmp_path, "c1")
    target = _target(vllm, tmp_path)
    await promote(pool, "c1", "cli:alice", target)
    vllm.loras.clear()  # the server restarted

    await promote(pool, "c1", "cli:alice", target)

    assert vllm.loras == {"lorebot": str(folder)}
    assert [e.action for e in await store.events(pool)].count("promoted") == 1


async def test_a_promotion_the_server_refuses_changes_nothing(
    pool: AsyncConnectionPool, vllm: FakeVLLM, tmp_path: Path
) -> None:
    await _register(pool, tmp_path, "c1")
    await promote(pool, "c1", "cli:alice", _target(vllm, tmp_path))
    gone = await _register(pool, tmp_path, "c2")
    gone.rmdir()  # vLLM cannot load it

    with pytest.raises(ServingError, match="No adapter found"):
        await promote(pool, "c2", "cli:bob", _target(vllm, tmp_path))

    assert (await store.serving(pool)).name == "c1"
    assert {r.name: r.status for r in await store.adapters(pool)} == {"c1": "serving", "c2": "candidate"}


async def test_rollback_serves_the_previous_adapter_and_walks_back_one_step_at_a_time(
    pool: AsyncConnectionPool, vllm: FakeVLLM, tmp_path: Path
) -> None:
    folders = [await _register(pool, tmp_path, name) for name in ("c1", "c2", "c3")]
    target = _target(vllm, tmp_path)
    for name in ("c1", "c2", "c3"):
        await promote(pool, name, "cli:alice", target)

    change = await rollback(pool, "cli:bob", target)
    assert (change.previous.name, change.current.name) == ("c3", "c2")
    assert vllm.loras == {"lorebot": str(folders[1])}
    change = await rollback(pool, "cli:bob", target)
    assert change.current.name == "c1" and vllm.loras == {"lorebot": str(folders[0])}

    with pytest.raises(NotFound, match="c1 is the first adapter ever promoted"):
        await rollback(pool, "cli:bob", target)
    statuses = {r.name: r.status for r in await store.adapters(pool)}
    assert statuses == {"c1": "serving", "c2": "rejected", "c3": "rejected"}
    assert ("c3", "rolled_back", "cli:bob") in [(e.adapter, e.action, e.actor) for e in await store.events(pool)]


async def test_rollback_with_nothing_serving_is_a_clear_error(
    pool: AsyncConnectionPool, vllm: FakeVLLM, tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="no adapter is serving"):
        await rollback(pool, "cli:bob", _target(vllm, tmp_path))
    assert vllm.calls == []


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "../etc", "c1'; DROP TABLE sft_adapters; --"])
async def test_hostile_or_malformed_names_are_refused(pool: AsyncConnectionPool, tmp_path: Path, name: str) -> None:
    with pytest.raises(StorageError, match="invalid adapter name"):
        await store.register(
            pool, name=name, base_model="m", path=str(tmp_path), parent=None, dataset_hash="", dataset_size=0,
            train_config={}, actor="cli:ops",
        )  # fmt: skip
    assert await store.adapters(pool) == []


async def test_unknown_adapter_cannot_be_promoted(pool: AsyncConnectionPool, vllm: FakeVLLM, tmp_path: Path):
    with pytest.raises(NotFound, match="no adapter named 'nope'"):
        await promote(pool, "nope", "cli:alice", _target(vllm, tmp_path))
    assert vllm.calls == []


async def test_admins_are_told_with_the_metric_deltas(
    pool: AsyncConnectionPool, vllm: FakeVLLM, tmp_path: Path
) -> None:
    metrics = {
        "current": {"loop": {"all": {"token_f1": 40.0, "refusal_accuracy": 0.5, "false_refusal": 0.2}}},
        "candidate": {"loop": {"all": {"token_f1": 46.5, "refusal_accuracy": 0.5, "false_refusal": 0.1}}},
    }
    await _register(pool, tmp_path, "c1", metrics=metrics)
    notices: list[Notice] = []

    async def notify(notice: Notice) -> None:
        notices.append(notice)

    await promote(pool, "c1", "slack:U1", _target(vllm, tmp_path), notify=notify)

    assert notices[0].text().splitlines() == [
        "Lorebot now answers with adapter c1",
        "Replaces the base model; promoted by slack:U1.",
        "loop token_f1: 40.000 → 46.500 (+6.5 pts, better)",
        "loop refusal_accuracy: 0.500 → 0.500 (+0.0 pts, same)",
        "loop false_refusal: 0.200 → 0.100 (-10.0 pts, better)",
    ]


async def test_the_bots_request_the_serving_name_and_get_the_promoted_adapter(
    pool: AsyncConnectionPool, vllm: FakeVLLM, settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    await _register(pool, tmp_path, "c1")
    await _register(pool, tmp_path, "c2")
    target = _target(vllm, tmp_path)
    await promote(pool, "c1", "cli:alice", target)
    bot_settings = settings.model_copy(update={"llm_base_url": vllm.base_url, "llm_model": "lorebot"})
    service = await Lorebot.start(bot_settings, embedder=embedder)
    admin = Actor("slack", "U1", is_admin=True)
    try:
        await service.add_text(admin, "The office opens at nine.", title="Office hours")
        question = Question("When does the office open?", Actor("slack", "U2"), ("default",))
        before = await service.ask(question)
        await promote(pool, "c2", "cli:alice", target)
        after = await service.ask(question)  # the same running bot: no restart
    finally:
        await service.close()

    assert before.text.startswith("Answered by c1") and after.text.startswith("Answered by c2")
    assert set(vllm.chat_models) == {"lorebot"}


def test_status_promote_and_rollback_commands(
    vllm: FakeVLLM, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    metrics = {"current": {"loop": {"all": {"token_f1": 40.0}}}, "candidate": {"loop": {"all": {"token_f1": 46.5}}}}
    for name in ("c1", "c2"):
        asyncio.run(_register_sync(database_url, tmp_path, name, metrics))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LLM_BASE_URL", vllm.base_url)
    monkeypatch.setenv("LLM_MODEL", "lorebot")

    assert runner.invoke(sft_app, ["promote", "c1"]).output.strip() == "c1 serves (before: the base model)"
    assert runner.invoke(sft_app, ["promote", "c2"]).exit_code == 0
    table = runner.invoke(sft_app, ["status"], env={"COLUMNS": "250"}).output
    assert "c2" in table and "serving" in table and "40.0 → 46.5" in table and "cli:" in table
    rolled = runner.invoke(sft_app, ["rollback"])
    assert rolled.exit_code == 0 and rolled.output.strip() == "rolled back from c2 to c1"
    rows = json.loads(runner.invoke(sft_app, ["status", "--json"]).output)
    assert [(r["name"], r["status"]) for r in rows] == [("c1", "serving"), ("c2", "rejected")]
    assert rows[0]["promoted_by"].startswith("cli:") and rows[0]["promoted_at"].startswith("20")
    missing = runner.invoke(sft_app, ["promote", "nope"])
    assert missing.exit_code == 1 and "no adapter named 'nope'" in missing.output
    assert vllm.loras == {"lorebot": str(tmp_path / "c1")}


async def _register_sync(database_url: str, tmp_path: Path, name: str, metrics: dict) -> None:
    from bot.storage.pool import open_pool

    pool = await open_pool(database_url, Settings(_env_file=None, database_url=database_url))
    try:
        await _register(pool, tmp_path, name, metrics=metrics)
    finally:
        await pool.close()


def test_register_then_reload_the_serving_adapter_after_a_server_restart(
    vllm: FakeVLLM, database_url: str, tmp_path: Path, tiny_lora_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LLM_BASE_URL", vllm.base_url)
    monkeypatch.setenv("LLM_MODEL", "lorebot")
    nothing = runner.invoke(sft_app, ["promote"])
    assert nothing.exit_code == 0 and "no adapter is serving yet" in nothing.output and vllm.calls == []

    add = ["register", str(tiny_lora_dir), "--name", "first", "--base-model", "Qwen/Qwen3-4B-Instruct-2507"]
    assert runner.invoke(sft_app, add).output.strip() == "registered first"
    assert "already registered" in runner.invoke(sft_app, add).output
    assert runner.invoke(sft_app, ["promote", "first"]).exit_code == 0
    vllm.loras.clear()  # vLLM restarted: runtime adapters are gone

    again = runner.invoke(sft_app, ["promote"])

    assert again.exit_code == 0 and again.output.strip() == "first serves (before: first)"
    assert vllm.loras == {"lorebot": str(tiny_lora_dir.resolve())}
    not_adapter = runner.invoke(sft_app, ["register", str(tmp_path), "--name", "x", "--base-model", "m"])
    assert not_adapter.exit_code == 1 and "is not a PEFT adapter folder" in not_adapter.output


def test_admins_get_the_notice_in_slack_and_discord_webhooks_and_a_failing_hook_changes_nothing(
    vllm: FakeVLLM, database_url: str, tmp_path: Path, tiny_lora_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    received: dict[str, dict] = {}

    async def hook(request: Request) -> PlainTextResponse:
        platform = request.path_params["platform"]
        received[platform] = await request.json()
        return PlainTextResponse("ok", status_code=500 if platform == "broken" else 200)

    app = Starlette(routes=[Route("/{platform}", hook, methods=["POST"])])
    with running_app(app) as hooks:
        monkeypatch.setenv("ADMIN_WEBHOOKS", f"slack={hooks}/slack,discord={hooks}/discord,slack={hooks}/broken")
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("LLM_BASE_URL", vllm.base_url)
        monkeypatch.setenv("LLM_MODEL", "lorebot")
        add = ["register", str(tiny_lora_dir), "--name", "first", "--base-model", "m"]
        assert runner.invoke(sft_app, add).exit_code == 0
        result = runner.invoke(sft_app, ["promote", "first"])

    assert result.exit_code == 0 and result.output.strip().endswith("first serves (before: the base model)")
    assert received["slack"]["text"].startswith("*Lorebot now answers with adapter first*\nReplaces the base model")
    assert received["discord"]["content"].startswith("**Lorebot now answers with adapter first**")
    assert received["discord"]["allowed_mentions"] == {"parse": []}
    assert "broken" in received  # tried, failed, logged; the promotion stands


@pytest.mark.parametrize("entry", ["teams=https://x", "slack:https://x", "slack=ftp://x"])
def test_a_malformed_webhook_entry_is_a_config_error(
    entry: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMIN_WEBHOOKS", entry)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(sft_app, ["rollback"])
    assert result.exit_code == 1 and "ADMIN_WEBHOOKS entries look like slack=https://" in result.output
