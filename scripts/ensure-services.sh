#!/usr/bin/env bash
# Make sure the services the test suite talks to are up. Starts what this machine has installed
# but is not running; a service that still cannot be reached makes the test run fail (never skip).
set -u
pg_up() { python3 - <<'PY'
import socket, sys
host, port = "127.0.0.1", 5432
s = socket.socket(); s.settimeout(1)
try:
    s.connect((host, port)); print("up")
except OSError:
    print("down")
PY
}
if [ "$(pg_up)" != "up" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "PostgreSQL is down; starting it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 30); do [ "$(pg_up)" = "up" ] && break; sleep 1; done
fi
exit 0
