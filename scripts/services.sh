#!/usr/bin/env bash
# Starts the real Postgres and Redis the tests run against, on loopback, idempotently.
# Facts this relies on (measured on our machines): the PostgreSQL 15 cluster `15/main` is
# initialised but stopped; `pg_ctlcluster ... start` returns 2 when it already runs; the shipped
# pg_hba.conf asks for a password on 127.0.0.1/::1; Redis is not installed, and a second
# `redis-server --daemonize yes` exits 0 while failing, so we guard with `redis-cli ping`.
set -euo pipefail

PG_VERSION=${PG_VERSION:-15}
PG_CLUSTER=${PG_CLUSTER:-main}
PG_DB=${PG_DB:-test}
REDIS_PORT=${REDIS_PORT:-6379}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

start_postgres() {
    local hba="/etc/postgresql/${PG_VERSION}/${PG_CLUSTER}/pg_hba.conf"
    # Trust on loopback for the tests' `postgres` user; only rewrite when needed.
    if grep -Eq '^host\s+all\s+all\s+(127\.0\.0\.1/32|::1/128)\s+(scram-sha-256|md5)' "$hba"; then
        as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)(scram-sha-256|md5)/\1trust/' "$hba"
        local hba_changed=1
    fi
    if ! pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; then
        as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start || [ $? -eq 2 ]
    elif [ -n "${hba_changed:-}" ]; then
        as_root pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" reload
    fi
    for _ in $(seq 1 50); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 0.1
    done
    if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='${PG_DB}'" | grep -q 1; then
        psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE \"${PG_DB}\"" >/dev/null
    fi
    echo "postgres: up on 127.0.0.1:5432 (database ${PG_DB})"
}

start_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
    fi
    if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
            --save '' --appendonly no --dir /tmp >/dev/null
        for _ in $(seq 1 50); do
            redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    fi
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null
    echo "redis: up on 127.0.0.1:${REDIS_PORT}"
}

start_postgres
start_redis
