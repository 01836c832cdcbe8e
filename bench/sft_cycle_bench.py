"""One turn of the closed loop with the real embedded model on this machine's CPU: seconds per stage of
:func:`bot.sft.cycle.run_cycle` and the gate's decision table.

1. A fresh embedded database; ``--questions`` SQuAD / CMRC 2018 paragraphs ingested, one question each asked
   through the service, answered by the embedded Gemma 3 270M serving the shipped adapter, and rated 👍 (what a
   cycle collects; the answers are the small model's own, good or not).
2. The shipped adapter is registered and promoted: the running local server is the serving server.
3. ``run_cycle``: collect → dataset → train (``--steps`` LoRA steps continuing the shipped adapter) → evaluate
   (the real RAG loop on ``--eval-limit`` held-out questions per language, both models, plus the regression set)
   → gate → promotion or rejection.

    .venv/bin/python bench/sft_cycle_bench.py [--questions 24] [--steps 6] [--eval-limit 8]

Prints the stage timings and the decision table; writes settings, git SHA and numbers to
``bench/results/sft_cycle.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import ROOT, write_results  # bench/common.py (the script's folder is on sys.path)

from bot.domain import Actor, Question
from bot.local_llm.launcher import SHIPPED_ADAPTER, default_model_path, start_local_llm
from bot.service import Lorebot
from bot.settings import Settings
from bot.sft import gate
from bot.sft.config import GEMMA3_270M, CycleConfig, DatasetConfig, EvalConfig, SFTConfig, TrainConfig
from bot.sft.cycle import CycleRun, run_cycle
from bot.sft.lora_runtime import LoraRuntime
from bot.sft.realloop import throwaway_settings
from bot.sft.registry import ServingTarget, promote
from bot.storage import adapters as registry
from bot.storage.embedded import stop_embedded_server

RESULTS = ROOT / "bench" / "results" / "sft_cycle.json"
QA_DIR = ROOT.parent / "shared" / "data" / "qa"
QA_FILES = ("squad-v1.1-dev-part-a.json", "cmrc2018-dev-part-a.json")
ADMIN, ASKER, RATER = Actor("local", "bench", is_admin=True), Actor("local", "asker"), Actor("local", "rater")


def split_qa(folder: Path, *, seed_paragraphs: int, eval_articles: int) -> tuple[list[dict], list[Path]]:
    """Paragraphs (with their first question) to seed feedback from, and small QA files of other articles for the
    evaluation, half from each language."""
    seeds, eval_files = [], []
    for name in QA_FILES:
        data = json.loads((QA_DIR / name).read_text(encoding="utf-8"))["data"]
        held, rest = data[:eval_articles], data[eval_articles:]
        path = folder / f"eval-{name}"
        path.write_text(json.dumps({"data": held}, ensure_ascii=False), encoding="utf-8")
        eval_files.append(path)
        paragraphs = [(a["title"], p) for a in rest for p in a["paragraphs"] if p["qas"]]
        seeds += paragraphs[: seed_paragraphs // len(QA_FILES)]
    return seeds, eval_files


async def seed_feedback(service: Lorebot, seeds: list[tuple[str, dict]]) -> int:
    for number, (title, paragraph) in enumerate(seeds):
        await service.add_text(ADMIN, paragraph["context"], title=title, source_uri=f"bench://{number}")
    rated = 0
    for _, paragraph in seeds:
        answer = await service.ask(Question(paragraph["qas"][0]["question"], ASKER, ("default",)))
        if answer.found and answer.message_id is not None:
            await service.record_feedback(RATER, answer.message_id, 1)
            rated += 1
    return rated


async def main(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="lorebot-sft-cycle-bench-"))
    folder.chmod(0o755)
    settings = Settings(_env_file=None, data_dir=folder / "data", rate_limit_per_minute=0, log_level="WARNING")
    seeds, eval_files = split_qa(folder, seed_paragraphs=args.questions, eval_articles=args.eval_articles)
    config = SFTConfig(
        dataset=DatasetConfig(tokenizer=GEMMA3_270M, max_tokens=1024, eval_fraction=0.2),
        train=TrainConfig(
            base_model=GEMMA3_270M, max_steps=args.steps, batch_size=1, grad_accum=2, max_seq_len=1024,
            learning_rate=1e-4, logging_steps=1, save_steps=args.steps, threads=args.threads,
        ),
        eval=EvalConfig(qa_files=tuple(eval_files), limit=args.eval_limit, question_offset=0, max_tokens=48),
        cycle=CycleConfig(runs_dir=folder / "cycles", min_new_examples=1, min_questions=5),
    )  # fmt: skip
    started = time.perf_counter()
    model = default_model_path(Settings(_env_file=None))  # the user's assembled GGUF and its de-quantized copy
    local = await asyncio.to_thread(start_local_llm, settings, model_path=model, adapter_path=SHIPPED_ADAPTER, port=0)
    timings = {"start local server (270M + shipped adapter)": round(time.perf_counter() - started, 1)}
    try:
        served = settings.model_copy(update={"llm_base_url": local.base_url, "llm_model": local.model_name})
        service = await Lorebot.start(served)
        try:
            started = time.perf_counter()
            rated = await seed_feedback(service, seeds)
            timings["seed: ingest + ask + rate"] = round(time.perf_counter() - started, 1)
            target = ServingTarget(
                LoraRuntime(local.base_url), local.model_name, folder / "data" / "adapters" / "serving"
            )
            await registry.register(
                service.pool, name="shipped", base_model=GEMMA3_270M, path=str(SHIPPED_ADAPTER), parent=None,
                dataset_hash="", dataset_size=0, train_config={}, actor="bench",
            )  # fmt: skip
            await promote(service.pool, "shipped", "bench", target)
            with throwaway_settings(settings) as loop_settings:
                run = CycleRun(served, service.pool, config, loop_settings, target, target, "bench")
                outcome = await run_cycle(run)
        finally:
            await service.close()
    finally:
        local.stop()
        stop_embedded_server(settings.data_dir)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{rated} rated answers; cycle {outcome.cycle}: {outcome.state} — {outcome.message}")
    print("\n| stage | seconds |\n|---|---:|")
    for stage, seconds in {**timings, **outcome.timings}.items():
        print(f"| {stage} | {seconds:g} |")
    if outcome.decision is not None:
        print("\n" + gate.table(outcome.decision))
    write_results(
        RESULTS,
        {
            "settings": vars(args),
            "data": {"qa_files": list(QA_FILES), "rated_answers": rated},
            "seconds": {**timings, **outcome.timings},
            "state": outcome.state,
            "decision": outcome.decision.to_dict() if outcome.decision else None,
        },
        load_before=load_before,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=24, help="rated answers to seed (half English, half Chinese)")
    parser.add_argument("--eval-articles", type=int, default=1, help="held-out articles per QA file")
    parser.add_argument("--eval-limit", type=int, default=8, help="real-loop questions per language")
    parser.add_argument("--steps", type=int, default=6, help="LoRA steps (batch 1 × 2 accumulated)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for training")
    asyncio.run(main(parser.parse_args()))
