"""What every benchmark records next to its numbers."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def database_server(prefix: str) -> str:
    """The admin URI of ``DATABASE_URL``'s server, else of a throwaway embedded one (removed when the bench exits)."""
    from bot.storage.embedded import start_throwaway_server

    return os.environ.get("DATABASE_URL") or start_throwaway_server(prefix)


def git_sha() -> str:
    """The commit the numbers were measured on, ``-dirty`` when the tree had uncommitted changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    return sha.stdout.strip() + ("-dirty" if dirty.strip() else "")


def write_results(path: Path, record: dict, *, load_before: tuple[float, ...], machine: dict | None = None) -> None:
    """Write ``record`` as JSON next to the commit, the machine and the load average it was measured under."""
    record = {
        **record,
        "git_sha": git_sha(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), **(machine or {})},
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")
