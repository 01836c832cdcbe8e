"""CLI start-up: wall time of short ``lorebot`` commands in new processes, on an existing data directory.

A throwaway data directory gets the embedded Postgres, the schema and a handful of SQuAD paragraphs first
(untimed); then each command runs ``--runs`` times. ``search`` must load the embedding model; the others (``doctor
--no-llm`` included) must not, which the bench checks by asking Python whether torch was imported
(``-X importtime``).

    .venv/bin/python bench/cli_bench.py [--runs 5]

Prints a table and writes the numbers, git SHA, niceness and load average to ``bench/results/cli-nice<n>.json``
(a process niced below other busy ones measures mostly the scheduler: run it both ways on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, write_results  # bench/common.py (the script's folder is on sys.path)

LOREBOT = ROOT / ".venv" / "bin" / "lorebot"
DATASET = ROOT.parent / "shared" / "data" / "qa" / "squad-v1.1-dev-part-a.json"
TORCH_IMPORT = re.compile(r"^import time:.*\|\s+torch$", re.MULTILINE)
COMMANDS = {
    "--help": ["--help"],
    "migrate": ["migrate"],
    "docs list": ["docs", "list"],
    "doctor --no-llm": ["doctor", "--no-llm"],
    "search (cold)": ["search", "When did the 1973 oil crisis begin?"],
}


def run(args: list[str], env: dict[str, str]) -> tuple[float, bool]:
    """Seconds the command took, and whether it imported torch."""
    started = time.perf_counter()
    done = subprocess.run([str(LOREBOT), *args], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, TORCH_IMPORT.search(done.stderr) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="lorebot-cli-bench-"))
    env = {**os.environ, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    docs = data_dir / "docs"
    docs.mkdir()
    article = json.loads(DATASET.read_text(encoding="utf-8"))["data"][0]
    for i, paragraph in enumerate(article["paragraphs"][:10]):
        (docs / f"{i}.md").write_text(f"# {article['title']}\n\n{paragraph['context']}\n", encoding="utf-8")
    subprocess.run([str(LOREBOT), "ingest", str(docs)], env=env, capture_output=True, check=True)

    load_before = os.getloadavg()
    traced = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    rows = {}
    for name, command in COMMANDS.items():
        seconds = [run(command, env)[0] for _ in range(args.runs)]
        rows[name] = {
            "median_s": float(np.median(seconds)),
            "max_s": max(seconds),
            "imports_torch": run(command, traced)[1],
        }
    load_after = os.getloadavg()
    load = f"load average {load_before[0]:.1f} / {load_after[0]:.1f}"
    print(f"\n{args.runs} runs per command, {os.cpu_count()} CPUs, nice {os.nice(0)}, {load}")
    print(f"{'command':<16} {'median s':>9} {'max s':>7} {'imports torch':>14}")
    for name, r in rows.items():
        print(f"{name:<16} {r['median_s']:9.2f} {r['max_s']:7.2f} {r['imports_torch']!s:>14}")
    results = ROOT / "bench" / "results" / f"cli-nice{os.nice(0)}.json"
    record = {
        "benchmark": "cli",
        "settings": {"runs": args.runs, "data_dir": "throwaway, embedded Postgres, 10 SQuAD paragraphs"},
        "results": rows,
    }
    write_results(results, record, load_before=load_before, machine={"nice": os.nice(0)})


if __name__ == "__main__":
    main()
