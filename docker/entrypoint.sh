#!/bin/sh
# Container entry point: optionally wait for Postgres, then *replace* this shell with `lorebot ARGS...`.
#
# `exec` matters: lorebot becomes the process that receives SIGTERM from `docker stop`, so its graceful shutdown
# (finish in-flight answers, close the pool) runs instead of a SIGKILL at the end of the stop grace period.
#
# LOREBOT_WAIT_FOR_DB_S (seconds, default 0 = do not wait): with DATABASE_URL set, retry connecting this long
# before starting, so a bot restarted together with Postgres does not crash-loop while it boots.
set -eu

wait_for_database() {
    python - <<'PY'
import os
import sys
import time

import psycopg

budget = float(os.environ["LOREBOT_WAIT_FOR_DB_S"])
deadline = time.monotonic() + budget
while True:
    try:
        psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=2).close()
        break
    except psycopg.OperationalError as e:
        if time.monotonic() >= deadline:
            sys.exit(f"entrypoint: the database is not reachable after {budget:g} s: {e}")
        time.sleep(1)
PY
}

if [ -n "${DATABASE_URL:-}" ] && [ "${LOREBOT_WAIT_FOR_DB_S:-0}" != "0" ]; then
    wait_for_database
fi
exec lorebot "$@"
