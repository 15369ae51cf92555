#!/usr/bin/env bash
# Make sure the services the test suite talks to are up: PostgreSQL and NATS JetStream. Starts what
# this machine has installed but is not running; a service that still cannot be reached makes the
# test run fail (the suite checks at start — never a skip).
set -u
port_up() { python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1]))); print("up")
except OSError:
    print("down")
PY
}
wait_port() { for _ in $(seq 1 30); do [ "$(port_up "$1")" = "up" ] && return 0; sleep 1; done; return 1; }

if [ "$(port_up 5432)" != "up" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "PostgreSQL is down; starting it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  wait_port 5432 || echo "PostgreSQL did not come up" >&2
fi
if [ "$(port_up 4222)" != "up" ] && [ -x /usr/sbin/nats-server ]; then
  echo "NATS is down; starting it with JetStream" >&2
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
  wait_port 4222 || echo "NATS did not come up" >&2
fi
exit 0
