"""The embedded model's speed on RAG prompts: fp32 against the bfloat16 copy Lorebot serves by default.

Loads the packaged Gemma 3 270M with the shipped adapter merged (what ``lorebot local-llm`` serves), then for each
precision answers the same prompts, built by the serving prompt code from real SQuAD questions with five
paragraphs of the question's article (the gold one among them, at a random place, ~800 tokens as in serving):
time to the first token (prefill), time per further token (decode), and the greedy answers — how many contain a
gold answer and how many equal fp32's. The real-loop quality of the two is in the adapter's EVAL.md.

    .venv/bin/python bench/local_llm_bench.py [--prompts 20] [--seed 0]

Prints a table and writes settings, data set, git SHA, seed, load average and numbers to
``bench/results/local-llm.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import numpy as np
import torch
from common import ROOT, write_results  # bench/common.py (the script's folder is on sys.path)

from bot.answer.prompt import build_messages
from bot.domain import Passage
from bot.local_llm.launcher import default_adapter_path, default_model_path
from bot.local_llm.model import LocalModel, load_local_model
from bot.settings import Settings

DATASET = ROOT.parent / "shared" / "data" / "qa" / "squad-v1.1-dev-part-a.json"
RESULTS = ROOT / "bench" / "results" / "local-llm.json"
SOURCES = 5
DECODE_TOKENS = 32


def prompts(count: int, seed: int) -> list[tuple[list[dict[str, str]], list[str]]]:
    """(messages, gold answers) for ``count`` questions, each with its paragraph and four of the same article."""
    rng = random.Random(seed)
    articles = [a for a in json.loads(DATASET.read_text(encoding="utf-8"))["data"] if len(a["paragraphs"]) > SOURCES]
    built = []
    for _ in range(count):
        article = rng.choice(articles)
        paragraphs = rng.sample(article["paragraphs"], SOURCES)
        qa = rng.choice(paragraphs[0]["qas"])
        rng.shuffle(paragraphs)
        title = article["title"].replace("_", " ")
        passages = [Passage(i, i, title, "", p["context"], 0.0) for i, p in enumerate(paragraphs)]
        built.append((build_messages(qa["question"], passages), [a["text"] for a in qa["answers"]]))
    return built


def greedy(runner, ids: torch.Tensor, local: LocalModel, tokens: int, *, exact: bool = False) -> torch.Tensor:
    fixed = {"min_new_tokens": tokens} if exact else {"eos_token_id": local.stop_token_ids}
    with torch.inference_mode():
        output = runner.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, do_sample=False, **fixed
        )
    return output[0, ids.shape[1] :]


def measure(local: LocalModel, cases: list, reference: list[str] | None) -> tuple[dict, list[str]]:
    with local.lock:
        started = time.perf_counter()
        runner = local.runner()
        build_s = time.perf_counter() - started
    greedy(runner, torch.tensor([local.prompt_ids(cases[0][0])]), local, 2)  # warm-up
    prefill, decode, answers = [], [], []
    for messages, _ in cases:
        ids = torch.tensor([local.prompt_ids(messages)])
        started = time.perf_counter()
        greedy(runner, ids, local, 1)
        prefill.append(time.perf_counter() - started)
        started = time.perf_counter()
        greedy(runner, ids, local, DECODE_TOKENS, exact=True)
        decode.append((time.perf_counter() - started - prefill[-1]) / (DECODE_TOKENS - 1))
        answers.append(local.tokenizer.decode(greedy(runner, ids, local, DECODE_TOKENS), skip_special_tokens=True))
    row = {
        "precision": local.precision,
        "build_s": build_s,
        "prompt_tokens_p50": float(np.median([len(local.prompt_ids(m)) for m, _ in cases])),
        "first_token_p50_ms": float(np.percentile(prefill, 50) * 1000),
        "first_token_p95_ms": float(np.percentile(prefill, 95) * 1000),
        "decode_ms_per_token": float(np.median(decode) * 1000),
        "gold_contained": sum(any(g in a for g in gold) for a, (_, gold) in zip(answers, cases, strict=True))
        / len(cases),
        "same_as_fp32": (
            sum(a.strip() == r.strip() for a, r in zip(answers, reference, strict=True)) / len(cases)
            if reference
            else 1.0
        ),
    }
    return row, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_before = os.getloadavg()
    settings = Settings(_env_file=None)
    cases = prompts(args.prompts, args.seed)
    local = load_local_model(
        default_model_path(settings), default_adapter_path(settings), name="bench", precision="float32"
    )
    rows, reference = [], None
    for precision in ("float32", "bfloat16"):
        local.precision = precision
        row, answers = measure(local, cases, reference)
        reference = reference or answers
        rows.append(row)
    print(f"{args.prompts} RAG prompts ({SOURCES} SQuAD paragraphs each), torch threads {torch.get_num_threads()}")
    print("precision  build s  prompt tok  first token p50/p95 ms  decode ms/token  gold contained  same as fp32")
    for r in rows:
        print(
            f"{r['precision']:<9} {r['build_s']:8.1f} {r['prompt_tokens_p50']:11.0f} "
            f"{r['first_token_p50_ms']:11.0f} / {r['first_token_p95_ms']:<6.0f} {r['decode_ms_per_token']:15.1f} "
            f"{r['gold_contained']:15.2f} {r['same_as_fp32']:13.2f}"
        )
    payload = {
        "benchmark": "local-llm",
        "seed": args.seed,
        "dataset": {"kind": "SQuAD v1.1 dev part a questions, 5 paragraphs of their article", "prompts": args.prompts},
        "settings": {"model": "Gemma 3 270M (packaged GGUF, de-quantized) + shipped adapter", "decode_tokens": 32},
        "results": rows,
    }
    write_results(RESULTS, payload, load_before=load_before, machine={"torch_threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
