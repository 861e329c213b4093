#!/usr/bin/env bash
# test-services.sh — real services for K2's integration tests.
#
#   scripts/test-services.sh start    start PostgreSQL + an S3 server (versitygw), set up PyIceberg
#   scripts/test-services.sh stop     stop both servers, keeping their data
#   scripts/test-services.sh env      print the `export` lines the Go tests read
#   scripts/test-services.sh status   say what is running
#   scripts/test-services.sh reset    stop, then delete all service data (not the tool cache)
#
# Everything runs on 127.0.0.1 as ordinary processes (no system services, no
# Docker). State lives under $K2_TEST_HOME (default <repo>/.k2-test, git-ignored):
#
#   pg/            PostgreSQL cluster (owned by the `postgres` OS user when run as root)
#   s3/            versitygw posix backend root; one directory per bucket
#   bin/versitygw  symlink into the tool cache
#   venv           symlink to a Python venv with PyIceberg, in the tool cache
#   logs/          postgres.log, versitygw.log, venv-setup.log, versitygw-build.log
#   env.sh         the same export lines as `env`; written by start, removed by stop
#
# Built tools are cached outside the work tree in $K2_TEST_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/k2-test) so a fresh clone on the same machine
# starts in seconds: versitygw-<version>/versitygw and venv-<hash>/ (the hash
# covers scripts/pyiceberg-requirements.txt and the base Python's version).
#
# Settings (environment): K2_TEST_HOME, K2_TEST_CACHE, K2_TEST_PG_PORT (55432),
# K2_TEST_S3_PORT (59000), K2_TEST_PG_BINDIR (PostgreSQL server binaries),
# K2_TEST_BASE_PYTHON (python3 used to create the venv), K2_TEST_S3_VERBOSE=1
# (log every S3 request to logs/versitygw.log).
#
# The script is idempotent: start on running services only checks them; stop
# on stopped services does nothing.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

K2_TEST_HOME="${K2_TEST_HOME:-$REPO_ROOT/.k2-test}"
K2_TEST_HOME="$(realpath -m "$K2_TEST_HOME")"
K2_TEST_CACHE="$(realpath -m "${K2_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k2-test}")"

PG_PORT="${K2_TEST_PG_PORT:-55432}"
PG_HOST=127.0.0.1
PG_ROLE=k2
PG_PASSWORD=k2
PG_DB=k2

S3_PORT="${K2_TEST_S3_PORT:-59000}"
S3_HOST=127.0.0.1
S3_BUCKET=k2-test
S3_REGION=us-east-1
# Fixed, test-only credentials for the local gateway (it listens on loopback only).
S3_ACCESS_KEY=k2-test-access-key
S3_SECRET_KEY=k2-test-secret-key
S3_ENDPOINT="http://$S3_HOST:$S3_PORT"

VERSITYGW_VERSION=v1.8.0
PY_REQUIREMENTS="$REPO_ROOT/scripts/pyiceberg-requirements.txt"

PG_DATA="$K2_TEST_HOME/pg"
S3_ROOT="$K2_TEST_HOME/s3"
LOG_DIR="$K2_TEST_HOME/logs"
S3_PIDFILE="$K2_TEST_HOME/versitygw.pid"
ENV_FILE="$K2_TEST_HOME/env.sh"
VENV_LINK="$K2_TEST_HOME/venv"
PYTHON="$VENV_LINK/bin/python"

# ---------------------------------------------------------------- helpers --

T0=$SECONDS
log() { printf '[test-services %3ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf '[test-services] ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [[ $EUID -eq 0 ]]; }

# Run a command as root (directly, or through sudo when we are not root).
as_root() {
  if is_root; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root to run: $*"
  fi
}

# Install Debian packages non-interactively, without starting their services.
apt_install() {
  log "installing Debian packages: $* (apt-get)"
  local policy=/usr/sbin/policy-rc.d created=0 rc=0
  # A policy-rc.d that answers 101 stops postinst scripts from starting
  # system services (the Debian postgresql package would start its own
  # cluster on port 5432); removed again right after.
  if [[ ! -e $policy ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    created=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || rc=$?
  if [[ $rc -eq 0 ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
  fi
  if [[ $created -eq 1 ]]; then as_root rm -f "$policy"; fi
  [[ $rc -eq 0 ]] || die "apt-get install $* failed (exit $rc)"
}

ensure_cmd() { # ensure_cmd COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

# -------------------------------------------------------------- PostgreSQL --

has_pg_server() { [[ -n ${1:-} && -x $1/initdb && -x $1/pg_ctl && -x $1/postgres ]]; }

find_pg_bindir() {
  local d
  if [[ -n ${K2_TEST_PG_BINDIR:-} ]]; then
    has_pg_server "$K2_TEST_PG_BINDIR" || die "K2_TEST_PG_BINDIR=$K2_TEST_PG_BINDIR has no initdb/pg_ctl/postgres"
    echo "$K2_TEST_PG_BINDIR"; return 0
  fi
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    if has_pg_server "$d"; then echo "$d"; return 0; fi
  fi
  while read -r d; do
    if has_pg_server "$d"; then echo "$d"; return 0; fi
  done < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r)
  if command -v initdb >/dev/null 2>&1; then
    d="$(dirname "$(readlink -f "$(command -v initdb)")")"
    if has_pg_server "$d"; then echo "$d"; return 0; fi
  fi
  return 1
}

PG_BIN=""
pg_init_bin() { # pg_init_bin [noinstall]
  [[ -n $PG_BIN ]] && return 0
  if ! PG_BIN="$(find_pg_bindir)"; then
    [[ ${1:-} == noinstall ]] && return 1
    apt_install postgresql
    PG_BIN="$(find_pg_bindir)" || die "PostgreSQL server binaries still not found after installing postgresql"
  fi
  PSQL="$PG_BIN/psql"; [[ -x $PSQL ]] || PSQL="$(command -v psql)" || die "psql not found"
  PG_ISREADY="$PG_BIN/pg_isready"; [[ -x $PG_ISREADY ]] || PG_ISREADY="$(command -v pg_isready)" || die "pg_isready not found"
}

# The OS user that owns and runs the cluster: initdb and postgres refuse root.
PG_OS_USER=""
pg_init_user() {
  [[ -n $PG_OS_USER ]] && return 0
  if ! is_root; then PG_OS_USER="$(id -un)"; return 0; fi
  if id -u postgres >/dev/null 2>&1; then
    PG_OS_USER=postgres
  else
    if ! id -u k2pg >/dev/null 2>&1; then
      log "creating unprivileged OS user k2pg to run PostgreSQL"
      useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin k2pg
    fi
    PG_OS_USER=k2pg
  fi
}

# Run a command as the cluster's OS user, from / (its home may be unreadable).
as_pg() {
  if is_root; then
    if command -v runuser >/dev/null 2>&1; then
      (cd / && runuser -u "$PG_OS_USER" -- "$@")
    else
      (cd / && su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")")
    fi
  else
    (cd / && "$@")
  fi
}

pg_running() {
  [[ -f $PG_DATA/PG_VERSION ]] || return 1
  as_pg "$PG_BIN/pg_ctl" -D "$(readlink -f "$PG_DATA")" status >/dev/null 2>&1
}

pg_port_answers() { "$PG_ISREADY" -q -h "$PG_HOST" -p "$PG_PORT" -t 1 >/dev/null 2>&1; }

# Where the cluster's files go. Normally $K2_TEST_HOME/pg; when running as
# root and the postgres user cannot reach $K2_TEST_HOME (a parent directory
# without o+x, e.g. under /root), a folder under /tmp with $K2_TEST_HOME/pg
# as a symlink to it.
pg_prepare_datadir() {
  if [[ -L $PG_DATA || -d $PG_DATA ]]; then return 0; fi
  if is_root && ! as_pg test -x "$K2_TEST_HOME"; then
    local alt
    alt="${TMPDIR:-/tmp}/k2-test-pg-$(printf '%s' "$K2_TEST_HOME" | sha256sum | cut -c1-12)"
    log "user $PG_OS_USER cannot reach $K2_TEST_HOME; keeping the cluster in $alt (symlinked as $PG_DATA)"
    mkdir -p "$alt"
    ln -sfn "$alt" "$PG_DATA"
  else
    mkdir -p "$PG_DATA"
  fi
  local real; real="$(readlink -f "$PG_DATA")"
  if is_root; then chown "$PG_OS_USER:" "$real"; fi
  chmod 700 "$real"
}

pg_start() {
  pg_init_bin
  pg_init_user
  local real major
  major="$("$PG_BIN/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')"

  if [[ -f $PG_DATA/PG_VERSION && "$(cat "$PG_DATA/PG_VERSION")" != "$major" ]]; then
    log "cluster in $PG_DATA is PostgreSQL $(cat "$PG_DATA/PG_VERSION"), server is $major: re-creating it (test data only)"
    pg_running && as_pg "$PG_BIN/pg_ctl" -D "$(readlink -f "$PG_DATA")" stop -m immediate -w >/dev/null 2>&1 || true
    rm -rf "$(readlink -f "$PG_DATA")"; rm -rf "$PG_DATA"
  fi

  pg_prepare_datadir
  real="$(readlink -f "$PG_DATA")"

  if [[ ! -f $real/PG_VERSION ]]; then
    log "initdb PostgreSQL $major cluster in $PG_DATA (as OS user $PG_OS_USER)"
    as_pg "$PG_BIN/initdb" -D "$real" -U postgres --auth=trust --no-locale -E UTF8 --no-sync \
      >"$LOG_DIR/initdb.log" 2>&1 || { cat "$LOG_DIR/initdb.log" >&2; die "initdb failed"; }
    # Test-only tuning: durability off, loopback only, TCP only.
    as_pg sh -c "cat >> '$real/postgresql.conf'" <<'EOF'

# --- K2 test cluster (scripts/test-services.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_min_error_statement = error
EOF
  fi

  if pg_running; then
    log "PostgreSQL already running ($PG_HOST:$PG_PORT)"
  else
    if pg_port_answers; then
      die "something else already answers on $PG_HOST:$PG_PORT (another checkout's test cluster?): stop it or set K2_TEST_PG_PORT"
    fi
    # The server writes its log itself, so it must reach it: beside the
    # cluster when that had to move to /tmp (logs/postgres.log links to it).
    local pglog="$LOG_DIR/postgres.log"
    if [[ -L $PG_DATA ]]; then
      pglog="$real.log"
      ln -sfn "$pglog" "$LOG_DIR/postgres.log"
    fi
    touch "$pglog"
    if is_root; then chown "$PG_OS_USER:" "$pglog"; fi
    log "starting PostgreSQL on $PG_HOST:$PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$real" -l "$pglog" -w -t 60 \
      -o "-p $PG_PORT -c listen_addresses=$PG_HOST" start >/dev/null 9>&- \
      || { tail -n 30 "$LOG_DIR/postgres.log" >&2; die "PostgreSQL did not start (log: $LOG_DIR/postgres.log)"; }
  fi

  local i
  for ((i = 0; i < 60; i++)); do
    pg_port_answers && break
    sleep 0.5
  done
  pg_port_answers || die "PostgreSQL does not answer on $PG_HOST:$PG_PORT (log: $LOG_DIR/postgres.log)"

  # Role and database, idempotently.
  "$PSQL" -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<EOF
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
EOF
  if [[ "$("$PSQL" -X -tA -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]]; then
    "$PSQL" -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
      -c "CREATE DATABASE $PG_DB OWNER $PG_ROLE" >/dev/null
  fi
  # Prove the contract URL works (as k2, over TCP).
  "$PSQL" -X -tA "postgres://$PG_ROLE:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB?sslmode=disable" \
    -c 'SELECT 1' >/dev/null || die "cannot connect as $PG_ROLE to database $PG_DB"
  log "PostgreSQL ready: $("$PSQL" -X -tA -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -c 'SHOW server_version')"
}

pg_stop() {
  if ! [[ -f $PG_DATA/PG_VERSION ]]; then return 0; fi
  pg_init_bin noinstall || return 0
  pg_init_user
  if pg_running; then
    log "stopping PostgreSQL"
    as_pg "$PG_BIN/pg_ctl" -D "$(readlink -f "$PG_DATA")" stop -m fast -w -t 60 >/dev/null
  fi
}

# ---------------------------------------------------------------------- S3 --

VERSITYGW_CACHED="$K2_TEST_CACHE/versitygw-$VERSITYGW_VERSION/versitygw"

versitygw_build() {
  if [[ -x $VERSITYGW_CACHED ]]; then return 0; fi
  command -v go >/dev/null 2>&1 || die "go is needed to build versitygw"
  local dir tmp
  dir="$(dirname "$VERSITYGW_CACHED")"
  mkdir -p "$dir"
  tmp="$(mktemp -d "$dir/.build.XXXXXX")"
  log "building versitygw $VERSITYGW_VERSION with go install (once per machine; ~2 min with empty Go caches)"
  if ! (cd "$tmp" && GOBIN="$tmp" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION") \
      >"$LOG_DIR/versitygw-build.log" 2>&1; then
    tail -n 30 "$LOG_DIR/versitygw-build.log" >&2
    rm -rf "$tmp"
    die "go install versitygw failed (log: $LOG_DIR/versitygw-build.log)"
  fi
  mv -f "$tmp/versitygw" "$VERSITYGW_CACHED"
  rm -rf "$tmp"
  log "versitygw built: $VERSITYGW_CACHED"
}

s3_pid() { [[ -f $S3_PIDFILE ]] && cat "$S3_PIDFILE"; }

s3_running() {
  local pid
  pid="$(s3_pid 2>/dev/null)" || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q versitygw
}

s3_healthy() { curl -fsS -o /dev/null --max-time 2 "$S3_ENDPOINT/health" 2>/dev/null; }
s3_port_answers() { curl -sS -o /dev/null --max-time 2 "$S3_ENDPOINT/" 2>/dev/null; }

# s3_curl METHOD PATH [curl args...] — a SigV4-signed request; prints the HTTP status.
# versitygw requires x-amz-content-sha256, which curl < 8 does not add itself.
s3_curl() {
  local method=$1 path=$2; shift 2
  curl -sS --max-time 20 -o "${S3_OUT:-/dev/null}" -w '%{http_code}' \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    -X "$method" "$@" "$S3_ENDPOINT$path"
}

s3_start() {
  ensure_cmd curl curl
  versitygw_build
  mkdir -p "$K2_TEST_HOME/bin" "$S3_ROOT"
  ln -sfn "$VERSITYGW_CACHED" "$K2_TEST_HOME/bin/versitygw"

  if s3_running; then
    log "versitygw already running (pid $(s3_pid), $S3_ENDPOINT)"
  else
    rm -f "$S3_PIDFILE"
    if s3_port_answers; then
      die "something else already answers on $S3_ENDPOINT (another checkout's gateway?): stop it or set K2_TEST_S3_PORT"
    fi
    log "starting versitygw on $S3_HOST:$S3_PORT (posix backend in $S3_ROOT)"
    local quiet=(--quiet)
    [[ ${K2_TEST_S3_VERBOSE:-0} == 1 ]] && quiet=()
    # setsid: its own session, so a Ctrl-C in the calling terminal does not
    # reach it; stdin from /dev/null; output to the log; and not holding our
    # lock (fd 9), or the next start would wait for the gateway to exit.
    ROOT_ACCESS_KEY_ID="$S3_ACCESS_KEY" ROOT_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
      setsid "$K2_TEST_HOME/bin/versitygw" --port "$S3_HOST:$S3_PORT" --region "$S3_REGION" \
      --health /health "${quiet[@]}" posix "$S3_ROOT" \
      >>"$LOG_DIR/versitygw.log" 2>&1 </dev/null 9>&- &
    echo $! >"$S3_PIDFILE"
  fi

  local i
  for ((i = 0; i < 120; i++)); do
    s3_healthy && break
    if ! s3_running; then
      tail -n 30 "$LOG_DIR/versitygw.log" >&2
      die "versitygw exited (log: $LOG_DIR/versitygw.log)"
    fi
    sleep 0.25
  done
  s3_healthy || die "versitygw does not answer on $S3_ENDPOINT/health (log: $LOG_DIR/versitygw.log)"

  # Bucket, idempotently.
  local code
  code="$(s3_curl HEAD "/$S3_BUCKET" -I)"
  if [[ $code != 200 ]]; then
    code="$(s3_curl PUT "/$S3_BUCKET")"
    [[ $code == 200 || $code == 409 ]] || die "creating bucket $S3_BUCKET failed: HTTP $code"
    log "created bucket $S3_BUCKET"
  fi

  # Round trip a small object.
  local key="/$S3_BUCKET/_k2-selfcheck/ping-$$" body="k2 ping $$ $(date +%s)" got
  code="$(s3_curl PUT "$key" -H 'Content-Type: text/plain' --data-binary "$body")"
  [[ $code == 200 ]] || die "S3 self-check PUT failed: HTTP $code"
  got="$(S3_OUT=/dev/stdout s3_curl GET "$key")"
  [[ $got == "${body}200" ]] || die "S3 self-check GET returned '$got', want '${body}200'"
  code="$(s3_curl DELETE "$key")"
  [[ $code == 204 || $code == 200 ]] || die "S3 self-check DELETE failed: HTTP $code"
  log "S3 ready: $S3_ENDPOINT bucket $S3_BUCKET (PUT/GET/DELETE ok)"
}

s3_stop() {
  if s3_running; then
    local pid i
    pid="$(s3_pid)"
    log "stopping versitygw (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$S3_PIDFILE"
}

# ----------------------------------------------------------------- PyIceberg --

find_base_python() {
  local p
  for p in "${K2_TEST_BASE_PYTHON:-}" python3 python3.13 python3.12 python3.11 python3.10; do
    [[ -n $p ]] || continue
    if command -v "$p" >/dev/null 2>&1 &&
       "$p" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1; then
      command -v "$p"; return 0
    fi
  done
  return 1
}

VENV_DIR=""
venv_resolve() {
  local base key
  if ! base="$(find_base_python)"; then
    apt_install python3 python3-venv
    base="$(find_base_python)" || die "no python3 (>= 3.10) with venv found"
  fi
  BASE_PYTHON="$base"
  key="$( { cat "$PY_REQUIREMENTS"; "$base" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-12)"
  VENV_DIR="$K2_TEST_CACHE/venv-$key"
}

venv_ok() {
  [[ -f $VENV_DIR/.k2-ready ]] &&
    "$VENV_DIR/bin/python" -c 'import pyiceberg, pyarrow, pyarrow.fs, sqlalchemy, psycopg2' >/dev/null 2>&1
}

# Creates the venv if missing. Output goes to the caller (a log file).
venv_build() {
  if venv_ok; then return 0; fi
  echo "creating venv $VENV_DIR with $BASE_PYTHON"
  rm -rf "$VENV_DIR"
  mkdir -p "$(dirname "$VENV_DIR")"
  "$BASE_PYTHON" -m venv "$VENV_DIR"
  "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$PY_REQUIREMENTS"
  "$VENV_DIR/bin/python" -c 'import pyiceberg, pyarrow, pyarrow.fs, sqlalchemy, psycopg2; print("pyiceberg", pyiceberg.__version__, "pyarrow", pyarrow.__version__)'
  touch "$VENV_DIR/.k2-ready"
}

venv_link() {
  if [[ -e $VENV_LINK && ! -L $VENV_LINK ]]; then rm -rf "$VENV_LINK"; fi
  ln -sfn "$VENV_DIR" "$VENV_LINK"
}

# -------------------------------------------------------------------- env --

env_lines() {
  cat <<EOF
export K2_TEST_HOME='$K2_TEST_HOME'
export K2_TEST_POSTGRES_URL='postgres://$PG_ROLE:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB?sslmode=disable'
export K2_TEST_S3_ENDPOINT='$S3_ENDPOINT'
export K2_TEST_S3_BUCKET='$S3_BUCKET'
export K2_TEST_S3_ACCESS_KEY='$S3_ACCESS_KEY'
export K2_TEST_S3_SECRET_KEY='$S3_SECRET_KEY'
export K2_TEST_S3_REGION='$S3_REGION'
export K2_TEST_PYTHON='$PYTHON'
EOF
}

# --------------------------------------------------------------- commands --

cmd_start() {
  mkdir -p "$K2_TEST_HOME" "$LOG_DIR" "$K2_TEST_CACHE"
  chmod 755 "$K2_TEST_HOME"
  exec 9>"$K2_TEST_HOME/.lock"
  flock -w 900 9 || die "another test-services.sh holds $K2_TEST_HOME/.lock"

  # PyIceberg's venv builds in the background (network-bound) while
  # versitygw compiles and PostgreSQL starts (CPU-bound).
  venv_resolve
  local venv_pid=""
  if venv_ok; then
    venv_link
  else
    log "setting up PyIceberg venv in the background (log: $LOG_DIR/venv-setup.log)"
    venv_build >"$LOG_DIR/venv-setup.log" 2>&1 &
    venv_pid=$!
  fi

  pg_start
  s3_start

  if [[ -n $venv_pid ]]; then
    if ! wait "$venv_pid"; then
      tail -n 40 "$LOG_DIR/venv-setup.log" >&2
      die "PyIceberg venv setup failed (log: $LOG_DIR/venv-setup.log)"
    fi
    venv_link
  fi
  log "PyIceberg ready: $("$PYTHON" -c 'import pyiceberg, pyarrow; print("pyiceberg", pyiceberg.__version__, "pyarrow", pyarrow.__version__)') ($PYTHON)"

  env_lines >"$ENV_FILE.tmp"
  mv -f "$ENV_FILE.tmp" "$ENV_FILE"
  log "services up; env in $ENV_FILE (or: eval \"\$(scripts/test-services.sh env)\")"
}

cmd_stop() {
  [[ -d $K2_TEST_HOME ]] || return 0
  rm -f "$ENV_FILE"
  s3_stop
  pg_stop
  log "services stopped (data kept in $K2_TEST_HOME)"
}

cmd_status() {
  local rc=0
  if [[ -f $PG_DATA/PG_VERSION ]] && pg_init_bin noinstall && pg_init_user && pg_running; then
    echo "postgres:  running on $PG_HOST:$PG_PORT ($PG_DATA)"
  else
    echo "postgres:  stopped"; rc=1
  fi
  if s3_running; then
    echo "versitygw: running on $S3_ENDPOINT (pid $(s3_pid))"
  else
    echo "versitygw: stopped"; rc=1
  fi
  if [[ -x $PYTHON ]]; then echo "python:    $PYTHON"; else echo "python:    not set up"; rc=1; fi
  return $rc
}

cmd_reset() {
  cmd_stop
  if [[ -L $PG_DATA ]]; then rm -rf "$(readlink -f "$PG_DATA")" "$(readlink -f "$PG_DATA").log"; fi
  rm -rf "$PG_DATA" "$S3_ROOT" "$LOG_DIR" "$S3_PIDFILE" "$ENV_FILE" "$K2_TEST_HOME/bin" "$VENV_LINK"
  log "service data deleted from $K2_TEST_HOME (tool cache kept in $K2_TEST_CACHE)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) env_lines ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  *)
    sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
