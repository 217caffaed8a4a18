#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer; start the local ones if they do not.
# `make test` runs this; it never touches services that are already up.
set -euo pipefail

wait_for() {  # wait_for NAME CHECK-COMMAND...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then echo "ok: $name is up"; return 0; fi
    sleep 0.5
  done
  echo "error: $name did not come up on 127.0.0.1; start it by hand (see README, 'Running the tests')" >&2
  return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "PostgreSQL is down: starting it"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -n | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  elif command -v service >/dev/null 2>&1; then
    service postgresql start || true
  fi
fi
wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 -q

if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  echo "Redis is down: starting it"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_for Redis sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'

# The development database `make run` uses with DATABASE_URL=postgres://postgres@127.0.0.1:5432/paved; the test
# suite creates its own test_paved next to it.
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'paved'" | grep -q 1; then
  createdb -h 127.0.0.1 -U postgres paved && echo "created database paved"
fi
