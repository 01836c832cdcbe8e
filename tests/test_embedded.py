"""The embedded Postgres on its first start, with real processes: a SIGKILL during initdb leaves nothing
half-written, stale pid files are recovered, several processes starting at once all succeed, and a throwaway
server (tests, benchmarks) leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.fixtures.embedded import run_to_completion, start_process, wait_for

START_TIMEOUT_S = 120


def test_sigkill_during_the_first_initdb_leaves_no_half_written_cluster(fresh_data_dir: Path, tmp_path: Path) -> None:
    process = start_process(fresh_data_dir, tmp_path / "killed.log")
    process.stdin.close()  # type: ignore[union-attr]
    # initdb writes PG_VERSION first and the catalogs after it: kill the whole group in between
    wait_for(lambda: any(fresh_data_dir.rglob("PG_VERSION")), 60, "initdb to start writing")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)

    pgdata = fresh_data_dir / "pgdata"
    assert not (pgdata / "PG_VERSION").exists() or (pgdata / "global" / "pg_filenode.map").exists()
    returncode, output = run_to_completion(fresh_data_dir, tmp_path / "next.log")
    assert returncode == 0, output
    assert output.endswith("ready\n")


def test_a_stale_postmaster_pid_with_a_negative_pid_is_removed_on_start(fresh_data_dir: Path, tmp_path: Path) -> None:
    first = run_to_completion(fresh_data_dir, tmp_path / "first.log")  # the server stops when its process exits
    assert first[0] == 0, first[1]
    pgdata = fresh_data_dir / "pgdata"
    # what a standalone backend (initdb's bootstrap, single-user mode) leaves behind when it is killed
    (pgdata / "postmaster.pid").write_text(f"-4242\n{pgdata}\n1700000000\n0\n")

    returncode, output = run_to_completion(fresh_data_dir, tmp_path / "second.log")

    assert returncode == 0, output


def test_a_cluster_left_half_written_by_an_older_version_is_set_aside_and_initialised_again(
    fresh_data_dir: Path, tmp_path: Path
) -> None:
    pgdata = fresh_data_dir / "pgdata"
    (pgdata / "global").mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("18\n")  # initdb was killed before it wrote global/pg_filenode.map

    returncode, output = run_to_completion(fresh_data_dir, tmp_path / "start.log")

    assert returncode == 0, output
    assert (pgdata / "global" / "pg_filenode.map").exists()
    (aside,) = fresh_data_dir.glob("pgdata.incomplete-*")
    assert (aside / "PG_VERSION").read_text() == "18\n"


def test_several_processes_starting_a_fresh_data_dir_at_once_all_succeed(fresh_data_dir: Path, tmp_path: Path) -> None:
    logs = [tmp_path / f"start-{n}.log" for n in range(4)]
    processes = [start_process(fresh_data_dir, log) for log in logs]
    for process in processes:
        process.stdin.close()  # type: ignore[union-attr]  # every process starts now

    codes = [process.wait(START_TIMEOUT_S) for process in processes]

    assert codes == [0, 0, 0, 0], "\n\n".join(log.read_text() for log in logs)


def test_a_throwaway_server_is_stopped_and_its_folder_removed_when_its_process_exits(fresh_data_dir: Path) -> None:
    fresh_data_dir.mkdir(mode=0o755)
    script = (
        "import psycopg\n"
        "from bot.storage.embedded import start_throwaway_server\n"
        "uri = start_throwaway_server('lorebot-throwaway-')\n"
        "psycopg.connect(uri).execute('CREATE TABLE kept (id int)')\n"
        "print(uri)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "TMPDIR": str(fresh_data_dir)},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )

    assert done.returncode == 0, done.stderr
    assert list(fresh_data_dir.glob("lorebot-throwaway-*")) == []  # pgserver's own `.lockfile` stays
    try:
        psycopg.connect(done.stdout.strip(), connect_timeout=2).close()
    except psycopg.OperationalError:
        pass
    else:
        raise AssertionError("the throwaway server still accepts connections after its process exited")
