"""The closed loop end to end on CPU: 👍 answers recorded by the real service → ``run_cycle`` → a tiny Gemma 3
LoRA trained, evaluated against the serving model in the real RAG loop (real embedded Postgres, real embeddings,
the real local model server over HTTP) and on the regression set → promoted through the gate → the same running
server answers with it; a deliberately worse adapter is refused; rollback restores the previous one.

Every answer in the corpus is the same word, so one short training run reliably learns it and the gate's
decisions are certain rather than lucky. The server starts with a "shipped" adapter that answers another word
(as production starts with the adapter shipped with Lorebot); the cycle continues training that adapter.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import openai
import pytest
from psycopg_pool import AsyncConnectionPool

from bot.domain import Actor, Question
from bot.embeddings import Embedder
from bot.service import Lorebot
from bot.settings import Settings
from bot.sft.config import CycleConfig, DatasetConfig, EvalConfig, LoraConfig, SFTConfig, TrainConfig
from bot.sft.cycle import CycleRun, run_cycle
from bot.sft.errors import SFTError
from bot.sft.lora_runtime import LoraRuntime, ServingError
from bot.sft.registry import ServingTarget, promote, rollback
from bot.storage import adapters as registry
from bot.storage import cycles
from tests.fixtures.llm import FakeLLM
from tests.fixtures.net import running_app, unused_port

ANSWER = "Zorb"
WRONG = "Vault"  # what the shipped adapter is trained to answer (it learns to start with "V": wrong, not empty)
SQUAD = {
    "data": [
        {
            "title": f"Vaults_{a}",
            "paragraphs": [
                {
                    "context": f"Vault {a}{p} stands on hill {a}. The keeper of vault {a}{p} is named {ANSWER}.",
                    "qas": [
                        {
                            "id": f"v{a}{p}",
                            "question": f"Who keeps vault {a}{p}?",
                            "answers": [{"text": ANSWER, "answer_start": 0}],
                        }
                    ],
                }
                for p in range(3)
            ],
        }
        for a in range(4)
    ]
}


@pytest.fixture
def local_server(tiny_model_dir: Path) -> Iterator[str]:
    """The real local model server (tiny model, no adapter yet, served as ``lorebot``) on uvicorn in a thread."""

    from bot.local_llm.model import load_local_model
    from bot.local_llm.server import create_app

    model = load_local_model(tiny_model_dir, name="lorebot")
    with running_app(create_app(model)) as url:
        yield f"{url}/v1"


async def _train_shipped(
    pool: AsyncConnectionPool, config: SFTConfig, tmp_path: Path
) -> tuple[Path, list[dict[str, str]]]:
    """A tiny LoRA trained to give the wrong keeper over exactly the prompts users rated (what the shipped
    adapter is to a real deployment: trained once, elsewhere), and one of those prompts to ask."""
    from bot.sft.feedback import feedback_examples
    from bot.sft.train import train
    from bot.storage.sft import rated_answers

    data = tmp_path / "shipped-data"
    data.mkdir()
    rated = feedback_examples(await rated_answers(pool, history_turns=0, limit=100))
    wrong = [{"messages": [*e.messages[:-1], {"role": "assistant", "content": f"{WRONG} [1]"}]} for e in rated]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in wrong), encoding="utf-8")
    adapter = train(replace(config.train, dataset_dir=data, output_dir=tmp_path / "shipped-run"))
    return adapter, list(rated[0].messages[:-1])


def _config(tmp_path: Path, tiny_model_dir: Path) -> SFTConfig:
    squad = tmp_path / "vaults.json"
    squad.write_text(json.dumps(SQUAD), encoding="utf-8")
    model = str(tiny_model_dir)
    return SFTConfig(
        dataset=DatasetConfig(tokenizer=model, max_tokens=2000, eval_fraction=0.2, seed=1),
        train=TrainConfig(
            base_model=model, max_steps=30, batch_size=4, learning_rate=1e-2, warmup_ratio=0.0,
            lr_scheduler="constant", logging_steps=5, save_steps=15, max_seq_len=512,
            lora=LoraConfig(r=8, alpha=16, dropout=0.0),
        ),
        eval=EvalConfig(qa_files=(squad,), withheld_fraction=0.0, question_offset=0, limit=0, max_tokens=6),
        cycle=CycleConfig(runs_dir=tmp_path / "cycles", min_new_examples=8, margin=20.0, tolerance=5.0,
                          min_questions=3),
    )  # fmt: skip


async def _seed_feedback(settings: Settings, embedder: Embedder, fake_llm: FakeLLM) -> None:
    """Every vault paragraph ingested, every question asked through the service (the production LLM is the
    fake one) and rated 👍 by another user."""
    fake_llm.default_reply = f"{ANSWER} [1]"
    unlimited = {"llm_base_url": fake_llm.base_url, "rate_limit_per_minute": 0}
    service = await Lorebot.start(settings.model_copy(update=unlimited), embedder=embedder)
    admin, asker, rater = Actor("slack", "A", is_admin=True), Actor("slack", "U1"), Actor("slack", "U2")
    try:
        for article in SQUAD["data"]:
            for paragraph in article["paragraphs"]:
                uri = f"kb://{paragraph['qas'][0]['id']}"
                await service.add_text(admin, paragraph["context"], title=article["title"], source_uri=uri)
        for article in SQUAD["data"]:
            for paragraph in article["paragraphs"]:
                answer = await service.ask(Question(paragraph["qas"][0]["question"], asker, ("default",)))
                assert answer.found, answer
                await service.record_feedback(rater, answer.message_id, 1)
    finally:
        await service.close()


def _ask(base_url: str, messages: list[dict[str, str]]) -> str:
    """A question as the chain asked it, straight to the model server under the name the bots request."""
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)
    reply = client.chat.completions.create(model="lorebot", messages=messages, max_tokens=6, temperature=0)
    return reply.choices[0].message.content or ""


async def test_the_closed_loop_promotes_through_the_gate_refuses_worse_and_rolls_back(
    settings: Settings,
    pool: AsyncConnectionPool,
    embedder: Embedder,
    fake_llm: FakeLLM,
    local_server: str,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    await _seed_feedback(settings, embedder, fake_llm)
    config = _config(tmp_path, tiny_model_dir)
    shipped_adapter, asked = await _train_shipped(pool, config, tmp_path)
    target = ServingTarget(LoraRuntime(local_server), "lorebot", tmp_path / "adapters" / "serving")
    dead = ServingTarget(LoraRuntime(f"http://127.0.0.1:{unused_port()}/v1", timeout_s=2), "lorebot")
    run = CycleRun(settings, pool, config, settings, target, target, "cli:ops", embedder=embedder)
    await registry.register(
        pool, name="shipped", base_model=str(tiny_model_dir), path=str(shipped_adapter), parent=None,
        dataset_hash="", dataset_size=12, train_config={}, actor="cli:ops",
    )  # fmt: skip
    await promote(pool, "shipped", "cli:ops", target)
    shipped_reply = _ask(local_server, asked)
    assert shipped_reply.strip() and not shipped_reply.startswith(ANSWER)

    # interrupted after training (the evaluation server is down): the cycle stays open at "trained"
    with pytest.raises(ServingError):
        await run_cycle(replace(run, evaluate_on=dead))
    open_cycle = await cycles.open_cycle(pool)
    assert (open_cycle.stage, open_cycle.candidate) == ("trained", open_cycle.name)
    with pytest.raises(SFTError, match="is open"):  # an offered adapter waits until the open cycle is done
        await run_cycle(run, offered=shipped_adapter)
    summary = config.cycle.runs_dir / open_cycle.name / "run" / "train_summary.json"
    trained_at = summary.stat().st_mtime_ns
    examples = await cycles.examples(pool, open_cycle.id)
    assert len(examples) == 12 and {e["group"] for e in examples} == {f"doc:kb://v{a}{p}" for a in range(4)
                                                                       for p in range(3)}  # fmt: skip

    # resumed: evaluated (not retrained), beats the shipped adapter by the margin, promoted, served without restart
    outcome = await run_cycle(run)
    assert outcome.state == "promoted", outcome.message
    assert summary.stat().st_mtime_ns == trained_at
    first = outcome.cycle
    rows = {(r.suite, r.lang, r.metric): r for r in outcome.decision.rows}
    assert rows["loop", "all", "token_f1"].candidate == 100.0 and rows["loop", "all", "token_f1"].passed
    assert ("regression", "all", "token_f1") not in rows  # nothing was promoted before this cycle
    assert set(outcome.timings) == {"collect", "dataset", "train", "evaluate", "gate"}
    serving = await registry.serving(pool)
    assert serving.name == first and serving.parent == "shipped" and serving.dataset_size > 0
    assert serving.metrics["compared_with"] == "shipped" and serving.promoted_by == "cli:ops"
    assert _ask(local_server, asked).startswith(ANSWER)

    # idempotent: nothing new, nothing runs
    again = await run_cycle(run)
    assert again.state == "nothing-new" and len(await cycles.cycles(pool)) == 1

    # a deliberately worse candidate (a copy of the shipped adapter) is refused on the loop and the regression set
    offered = tmp_path / "offered"
    shutil.copytree(shipped_adapter, offered)
    worse = await run_cycle(run, offered=offered)
    assert worse.state == "rejected", worse.message
    assert "loop all token_f1 gains" in worse.message and "regression all token_f1" in worse.message
    assert (await registry.serving(pool)).name == first
    assert _ask(local_server, asked).startswith(ANSWER)
    assert (await run_cycle(run, offered=offered)).state == "unchanged"
    assert (
        (config.cycle.runs_dir / worse.cycle / "decision.md")
        .read_text()
        .rstrip()
        .endswith("REJECT: " + "; ".join(worse.decision.reasons))
    )

    # an operator overrides the gate, answers change, rollback restores the promoted adapter
    await promote(pool, worse.cycle, "cli:ops", target)
    assert _ask(local_server, asked) == shipped_reply
    change = await rollback(pool, "cli:ops", target)
    assert (change.previous.name, change.current.name) == (worse.cycle, first)
    assert _ask(local_server, asked).startswith(ANSWER)
    assert target.link.resolve() == Path(serving.path)
