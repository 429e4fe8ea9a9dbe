#!/usr/bin/env bash
# db-servers.sh — throw-away MariaDB and PostgreSQL servers on 127.0.0.1 for the test suite.
#
#   eval "$(bash scripts/db-servers.sh start)"   # exports MLMD2KFP_TEST_MYSQL_URL, MLMD2KFP_TEST_PG_URL, ...
#   bash scripts/db-servers.sh stop "$MLMD2KFP_TEST_DB_DIR"
#
# Installs the Debian packages when missing (as root), never starts a system service,
# runs both servers from a temp folder on free ports, and creates an admin user `mlmd2kfp`
# that the tests use to make one fresh database per test. stdout carries only `export` lines.
# MariaDB runs with MySQL 8.0's default sql_mode and utf8mb4, so what passes here passes on MySQL 8.
set -euo pipefail

USER_NAME=mlmd2kfp
USER_PASS=${MLMD2KFP_TEST_DB_PASSWORD:-test-Pa55word}
SQL_MODE=ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION

log() { printf '[db-servers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

apt_install() {
  [ "$(id -u)" = 0 ] || die "packages missing ($*) and not root: install them first"
  log "installing $*"
  # policy-rc.d keeps the packages' init scripts from starting system services.
  local guard=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; guard=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
  if [ "$guard" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}

ensure_packages() {
  local want=()
  [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null || want+=(mariadb-server-core mariadb-client-core)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want+=(postgresql)
  # headers for the optional C MySQL driver (mysqlclient), which the tests cover beside PyMySQL
  pkg-config --exists mariadb 2>/dev/null || want+=(libmariadb-dev pkg-config gcc)
  if [ ${#want[@]} -gt 0 ]; then apt_install "${want[@]}"; fi
  export PATH="$PATH:/usr/sbin"
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
}

start_mariadb() {
  local M="$DIR/mariadb" port sock i userarg=()
  mkdir -p "$M"; port=$(free_port); sock="$M/mysqld.sock"
  [ "$(id -u)" = 0 ] && userarg=(--user=root)
  mariadb-install-db --no-defaults --datadir="$M/data" "${userarg[@]}" --auth-root-authentication-method=socket \
    --skip-test-db --skip-name-resolve >"$M/install.log" 2>&1 || { cat "$M/install.log" >&2; die "mariadb-install-db failed"; }
  setsid mariadbd --no-defaults --datadir="$M/data" "${userarg[@]}" --bind-address=127.0.0.1 --port="$port" \
    --socket="$sock" --pid-file="$M/mariadbd.pid" --log-error="$M/error.log" --skip-name-resolve --skip-log-bin \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci --sql-mode="$SQL_MODE" \
    --explicit-defaults-for-timestamp=ON --innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit=2 \
    --max-connections=300 </dev/null >>"$M/stdout.log" 2>&1 &
  echo $! >"$M/launched.pid"
  for i in $(seq 1 300); do
    mariadb --no-defaults --protocol=socket --socket="$sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
    kill -0 "$(cat "$M/launched.pid")" 2>/dev/null || { tail -20 "$M/error.log" >&2; die "mariadbd exited"; }
    sleep 0.1
  done
  mariadb --no-defaults --protocol=socket --socket="$sock" -uroot -e "
    CREATE USER '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$USER_PASS';
    GRANT ALL PRIVILEGES ON *.* TO '$USER_NAME'@'127.0.0.1' WITH GRANT OPTION;
    CREATE USER '$USER_NAME'@'localhost' IDENTIFIED BY '$USER_PASS';
    GRANT ALL PRIVILEGES ON *.* TO '$USER_NAME'@'localhost' WITH GRANT OPTION; FLUSH PRIVILEGES;"
  {
    echo "export MLMD2KFP_TEST_MYSQL_URL='mysql+pymysql://$USER_NAME:$USER_PASS@127.0.0.1:$port/mysql?charset=utf8mb4'"
    echo "export MLMD2KFP_TEST_MYSQL_SOCKET=$sock"
  } >>"$DIR/env.sh"
  log "mariadb $(mariadbd --version | awk '{print $3}') on 127.0.0.1:$port"
}

start_pg() {
  local P="$DIR/pg" port
  mkdir -p "$P"; port=$(free_port)
  if [ "$(id -u)" = 0 ]; then chmod 755 "$DIR"; chown postgres:postgres "$P"; fi
  chmod 700 "$P"
  as_pg "$PG_BIN/initdb" -D "$P/data" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust \
    --auth-host=scram-sha-256 >"$P/initdb.log" 2>&1 || { cat "$P/initdb.log" >&2; die "initdb failed"; }
  as_pg "$PG_BIN/pg_ctl" -D "$P/data" -l "$P/server.log" -w -t 60 -s -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $P -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >&2 || { tail -20 "$P/server.log" >&2; die "postgres failed to start"; }
  as_pg "$PG_BIN/psql" -q -v ON_ERROR_STOP=1 -h "$P" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE \"$USER_NAME\" LOGIN SUPERUSER PASSWORD '$USER_PASS'" >&2
  {
    echo "export MLMD2KFP_TEST_PG_URL='postgresql+psycopg://$USER_NAME:$USER_PASS@127.0.0.1:$port/postgres'"
  } >>"$DIR/env.sh"
  log "postgres $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

stop_all() {
  local dir=$1 pid
  [ -d "$dir" ] || return 0
  if [ -f "$dir/pg/data/postmaster.pid" ]; then
    as_pg "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl" -D "$dir/pg/data" -m immediate -w -t 30 -s stop >&2 || true
  fi
  pid=$(cat "$dir/mariadb/mariadbd.pid" 2>/dev/null || cat "$dir/mariadb/launched.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$dir"; then
    kill -TERM "$pid"; for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"; log "stopped and removed $dir"
}

case "${1:-}" in
  start)
    ensure_packages
    DIR=$(mktemp -d /tmp/mlmd2kfp-db.XXXXXX)
    echo "export MLMD2KFP_TEST_DB_DIR=$DIR" >"$DIR/env.sh"
    trap 'rc=$?; [ $rc = 0 ] || { log "start failed"; stop_all "$DIR"; }' EXIT
    start_mariadb
    start_pg
    trap - EXIT
    cat "$DIR/env.sh"
    ;;
  stop) stop_all "${2:?usage: db-servers.sh stop DIR}" ;;
  *) die "usage: db-servers.sh start | stop DIR" ;;
esac
