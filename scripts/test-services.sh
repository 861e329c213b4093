#!/usr/bin/env bash
# test-services.sh — real services for K2's integration tests.
#
#   scripts/test-services.sh start    start PostgreSQL, an S3 server (versitygw) and a Kafka broker, set up PyIceberg, promtool, Chromium and the dashboard's npm packages
#   scripts/test-services.sh stop     stop the servers, keeping their data
#   scripts/test-services.sh env      print the `export` lines the Go tests read
#   scripts/test-services.sh status   say what is running
#   scripts/test-services.sh reset    stop, then delete all service data (not the tool cache)
#   scripts/test-services.sh kafka-restart [--kill]   restart the Kafka broker on the same data
#   scripts/test-services.sh kafka-stop [--kill] | kafka-start   stop / start only the Kafka broker
#   scripts/test-services.sh kafka-fetch    only fetch Kafka's jars (broker and tools) into the tool cache
#   scripts/test-services.sh kafka-kill|kafka-start|postgres-kill|postgres-start|s3-kill|s3-start
#                            kill -9 / start one service (k2 ops drill --service-control)
#
# Everything runs on 127.0.0.1 as ordinary processes (no system services, no
# Docker). State lives under $K2_TEST_HOME (default <repo>/.k2-test, git-ignored):
#
#   pg/            PostgreSQL cluster (owned by the `postgres` OS user when run as root)
#   s3/            versitygw posix backend root; one directory per bucket
#   bin/versitygw  symlink into the tool cache
#   venv           symlink to a Python venv with PyIceberg, in the tool cache
#   kafka/         the Kafka broker: data/ (log.dirs, KRaft metadata), server.properties,
#                  log4j2.properties, server.log (its log), stdout.log (JVM output), kafka.pid,
#                  format.log, version (the Kafka version that formatted data/),
#                  scram-users (data/ was formatted with the SCRAM user)
#   tls/           a test CA (ca.pem, ca.key), one server certificate for 127.0.0.1 and
#                  localhost (server.pem, server.key; server.p12 for Kafka) and a client
#                  certificate (client.pem, client.key), made with openssl; the Kafka SASL_SSL
#                  and SSL listeners and PostgreSQL (ssl=on) serve the server's
#   logs/          postgres.log, versitygw.log, venv-setup.log, versitygw-build.log,
#                  kafka-fetch.log, kafka.log (symlink to kafka/server.log)
#   env.sh         the same export lines as `env`; written by start, removed by stop
#
# Built tools are cached outside the work tree in $K2_TEST_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/k2-test) so a fresh clone on the same machine
# starts in seconds: versitygw-<version>/versitygw, venv-<hash>/ (the hash
# covers scripts/pyiceberg-requirements.txt and the base Python's version) and
# kafka-<version>-<hash>/jars/ (the broker's and the command-line tools' jars
# from Maven Central, resolved by Maven through scripts/kafka/pom.xml; the hash
# covers that file) with,
# beside it, cds-<java-build>.jsa (a class-data sharing archive that halves
# the broker's start-up CPU; written by the first broker JVM when it stops).
#
# Kafka is one combined broker + controller JVM (KRaft, node id 1, loopback
# only; main class kafka.Kafka, storage formatted once with
# kafka.tools.StorageTool), needing Java 17+ and, the first time, Maven. It has
# three client listeners: PLAINTEXT (what most tests use; also the inter-broker
# and controller protocol), SASL_SSL (TLS with the test CA's certificate;
# SASL PLAIN and SCRAM-SHA-512, one user k2 with a fixed test-only password;
# the SCRAM credential is written when the storage is formatted) and SSL
# requiring a client certificate signed by the test CA.
#
# promtool, which checks and unit-tests deploy/prometheus/rules, comes from
# Debian's prometheus package (its server is never started); systemd-analyze,
# which verifies deploy/systemd's units, from Debian's systemd package.
#
# Settings (environment): K2_TEST_HOME, K2_TEST_CACHE, K2_TEST_PG_PORT (55432),
# K2_TEST_S3_PORT (59000), K2_TEST_KAFKA_PORT (59092, clients),
# K2_TEST_KAFKA_CONTROLLER_PORT (59093), K2_TEST_KAFKA_SASL_PORT (59094, SASL_SSL
# clients), K2_TEST_KAFKA_SSL_PORT (59095, SSL clients with a certificate), K2_TEST_PG_DURABLE=1 (a new cluster keeps
# fsync and synchronous commits on), K2_TEST_PG_BINDIR (PostgreSQL server
# binaries), K2_TEST_BASE_PYTHON (python3 used to create the venv),
# K2_TEST_S3_VERBOSE=1 (log every S3 request to logs/versitygw.log),
# K2_TEST_JAVA (java for the broker; default: the first Java 17+ of $JAVA_HOME,
# PATH, /usr/lib/jvm), K2_TEST_KAFKA_HEAP_OPTS ("-Xms256m -Xmx1g"),
# K2_TEST_KAFKA_JVM_OPTS (more JVM flags), K2_TEST_KAFKA_CDS=0 (no class-data
# sharing), K2_TEST_KAFKA_START_TIMEOUT (120 s), K2_TEST_KAFKA_STOP_TIMEOUT
# (30 s of SIGTERM before SIGKILL), K2_TEST_MAVEN_REPO (Maven local
# repository; default Maven's own, ~/.m2).
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

KAFKA_PORT="${K2_TEST_KAFKA_PORT:-59092}"
KAFKA_CONTROLLER_PORT="${K2_TEST_KAFKA_CONTROLLER_PORT:-59093}"
KAFKA_SASL_PORT="${K2_TEST_KAFKA_SASL_PORT:-59094}"
KAFKA_SSL_PORT="${K2_TEST_KAFKA_SSL_PORT:-59095}"
KAFKA_HOST=127.0.0.1
# Fixed, test-only SASL credentials (PLAIN and SCRAM-SHA-512) of the SASL_SSL
# listener, loopback only like the rest.
KAFKA_SASL_USER=k2
KAFKA_SASL_PASSWORD=k2-test-sasl-password

VERSITYGW_VERSION=v1.8.0
PY_REQUIREMENTS="$REPO_ROOT/scripts/pyiceberg-requirements.txt"

PG_DATA="$K2_TEST_HOME/pg"
S3_ROOT="$K2_TEST_HOME/s3"
LOG_DIR="$K2_TEST_HOME/logs"
S3_PIDFILE="$K2_TEST_HOME/versitygw.pid"
ENV_FILE="$K2_TEST_HOME/env.sh"
KAFKA_DIR="$K2_TEST_HOME/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
TLS_DIR="$K2_TEST_HOME/tls"
KAFKA_KEYSTORE_PASSWORD=k2-test-keystore
KAFKA_POM="$REPO_ROOT/scripts/kafka/pom.xml"
KAFKA_LOG4J="$REPO_ROOT/scripts/kafka/log4j2.properties"
VENV_LINK="$K2_TEST_HOME/venv"
PYTHON="$VENV_LINK/bin/python"
PROMTOOL="$(command -v promtool 2>/dev/null || echo /usr/bin/promtool)"

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

# --------------------------------------------------------------------- TLS --

# tls_make — the test CA, one server certificate for 127.0.0.1 and
# localhost (and a PKCS12 keystore of it for Kafka) and a client
# certificate, made once with openssl.
tls_make() {
  [[ -f $TLS_DIR/server.p12 && -f $TLS_DIR/ca.pem && -f $TLS_DIR/client.pem ]] && return 0
  ensure_cmd openssl openssl
  log "making the test CA and the services' certificate in $TLS_DIR"
  local d="$TLS_DIR.tmp"
  rm -rf "$d" && mkdir -p "$d"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=K2 test CA" \
      -keyout "$d/ca.key" -out "$d/ca.pem" &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$d/server.key" -out "$d/server.csr" &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$d/server.ext" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
      -extfile "$d/server.ext" -out "$d/server.pem" &&
    openssl pkcs12 -export -in "$d/server.pem" -inkey "$d/server.key" -name server \
      -passout "pass:$KAFKA_KEYSTORE_PASSWORD" -out "$d/server.p12" &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=k2-test-client" -keyout "$d/client.key" -out "$d/client.csr" &&
    printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext" &&
    openssl x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
      -extfile "$d/client.ext" -out "$d/client.pem"
  } >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; die "making the test certificates failed (log: $d/openssl.log)"; }
  chmod 644 "$d"/*
  rm -rf "$TLS_DIR" && mv "$d" "$TLS_DIR"
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
    # Test-only tuning: durability off (unless K2_TEST_PG_DURABLE=1: a
    # crash then loses no committed transaction, as in production), loopback
    # only, TCP only.
    local durability="fsync = off
synchronous_commit = off
full_page_writes = off"
    [[ ${K2_TEST_PG_DURABLE:-0} == 1 ]] && durability="# durable: K2_TEST_PG_DURABLE=1"
    as_pg sh -c "cat >> '$real/postgresql.conf'" <<EOF

# --- K2 test cluster (scripts/test-services.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
$durability
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
    # TLS with the test CA's certificate, copied where the server reads it
    # (its data directory, its own and private); plain connections still work.
    tls_make
    install -m 600 "$TLS_DIR/server.pem" "$real/server.crt"
    install -m 600 "$TLS_DIR/server.key" "$real/server.key"
    if is_root; then chown "$PG_OS_USER:" "$real/server.crt" "$real/server.key"; fi
    log "starting PostgreSQL on $PG_HOST:$PG_PORT (TLS too)"
    as_pg "$PG_BIN/pg_ctl" -D "$real" -l "$pglog" -w -t 60 \
      -o "-p $PG_PORT -c listen_addresses=$PG_HOST -c ssl=on" start >/dev/null 9>&- \
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
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ "$(argv0 "$pid")" == */versitygw ]]
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
    local pid=$!
    echo "$pid" >"$S3_PIDFILE"
    # Until the child has exec'd versitygw itself, s3_running says it is
    # not running: first it is our shell, then setsid, and for a moment
    # within each exec its command line reads empty (the new memory is in
    # place before its arguments are). Waiting only for setsid's command
    # line, which names versitygw too, let a check fall into setsid's exec
    # and report the gateway dead with an empty log.
    local deadline=$((SECONDS + 10))
    while pid_alive "$pid" && ! s3_running && ((SECONDS < deadline)); do sleep 0.02; done
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
    "$VENV_DIR/bin/python" -c 'import pyiceberg, pyarrow, pyarrow.fs, sqlalchemy, psycopg2, confluent_kafka.schema_registry.avro' >/dev/null 2>&1
}

# Creates the venv if missing. Output goes to the caller (a log file).
venv_build() {
  if venv_ok; then return 0; fi
  echo "creating venv $VENV_DIR with $BASE_PYTHON"
  rm -rf "$VENV_DIR"
  mkdir -p "$(dirname "$VENV_DIR")"
  "$BASE_PYTHON" -m venv "$VENV_DIR"
  "$VENV_DIR/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$PY_REQUIREMENTS"
  "$VENV_DIR/bin/python" -c 'import pyiceberg, pyarrow, pyarrow.fs, sqlalchemy, psycopg2, confluent_kafka.schema_registry.avro; print("pyiceberg", pyiceberg.__version__, "pyarrow", pyarrow.__version__)'
  touch "$VENV_DIR/.k2-ready"
}

venv_link() {
  if [[ -e $VENV_LINK && ! -L $VENV_LINK ]]; then rm -rf "$VENV_LINK"; fi
  ln -sfn "$VENV_DIR" "$VENV_LINK"
}

# ------------------------------------------------------------------- Kafka --

KAFKA_VERSION="$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$KAFKA_POM" | head -n 1)"
[[ -n $KAFKA_VERSION ]] || die "no <kafka.version> in $KAFKA_POM"
KAFKA_CACHED="$K2_TEST_CACHE/kafka-$KAFKA_VERSION-$(sha256sum <"$KAFKA_POM" | cut -c1-12)"
KAFKA_JARS="$KAFKA_CACHED/jars"
read -r -a KAFKA_HEAP <<<"${K2_TEST_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"

JAVA="" JAVA_MAJOR="" JAVA_BUILD=""
find_java() { # sets JAVA, JAVA_MAJOR (17, 21...) and JAVA_BUILD (home + VM version)
  local j m props
  for j in "${K2_TEST_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null)" \
           $(ls -d /usr/lib/jvm/*/bin/java 2>/dev/null | sort -V); do
    [[ -n $j && -x $j ]] || continue
    props="$("$j" -XshowSettings:properties -version 2>&1)" || continue
    m="$(sed -n 's/^ *java\.specification\.version = //p' <<<"$props")"
    m="${m#1.}"; m="${m%%.*}"
    if [[ $m =~ ^[0-9]+$ ]] && ((m >= 17)); then
      JAVA=$j JAVA_MAJOR=$m
      JAVA_BUILD="$(grep -E '^ *java\.(home|vm\.version) = ' <<<"$props" | tr -d ' ' | paste -sd' ')"
      return 0
    fi
    if [[ -n ${K2_TEST_JAVA:-} && $j == "$K2_TEST_JAVA" ]]; then die "K2_TEST_JAVA=$j is Java ${m:-?}; Kafka $KAFKA_VERSION needs 17+"; fi
  done
  return 1
}

kafka_init_java() {
  [[ -n $JAVA ]] && return 0
  if ! find_java; then
    apt_install default-jre-headless
    find_java || die "no Java 17+ found (Kafka $KAFKA_VERSION brokers need it); set K2_TEST_JAVA"
  fi
}

# The broker's classpath: the cached jars, in a fixed order (the class-data
# sharing archive below records it).
kafka_classpath() { ls "$KAFKA_JARS"/*.jar | LC_ALL=C sort | paste -sd:; }

# Class-data sharing (AppCDS): the first broker JVM dumps the classes it
# loaded into an archive when it exits after SIGTERM; the archive is checked
# and kept in the tool cache (per Java build), and later JVMs map it, which
# halves the broker's start-up CPU time (~5 -> ~2.5 CPU-seconds). A JVM
# killed with SIGKILL writes nothing, and an archive that does not load is
# deleted: a broker that dies at start with one is started again without it.
kafka_cds_archive() { echo "$KAFKA_CACHED/cds-$(printf '%s' "$JAVA_BUILD" | sha256sum | cut -c1-12).jsa"; }
KAFKA_CDS_DUMP="$KAFKA_DIR/cds-dump.jsa"

# kafka_cds_ok ARCHIVE — a JVM starts with it (-Xshare:on fails otherwise;
# a damaged archive can crash the JVM, hence the throwaway error file).
kafka_cds_ok() {
  local err rc=0
  err="$(mktemp -d)"
  (cd "$err" && "$JAVA" -Xshare:on -XX:SharedArchiveFile="$1" -XX:ErrorFile="$err/hs_err.log" \
    -cp "$(kafka_classpath)" -version >/dev/null 2>&1) || rc=$?
  rm -rf "$err"
  return $rc
}

# Moves the archive a stopped JVM dumped into the cache, if it loads.
kafka_cds_collect() {
  [[ -f $KAFKA_CDS_DUMP ]] || return 0
  kafka_init_java
  local archive; archive="$(kafka_cds_archive)"
  if [[ ! -f $archive ]] && kafka_jars_ok && kafka_cds_ok "$KAFKA_CDS_DUMP"; then
    cp -f "$KAFKA_CDS_DUMP" "$archive.tmp.$$" && chmod 444 "$archive.tmp.$$" && mv -f "$archive.tmp.$$" "$archive" &&
      log "kept the broker's class-data sharing archive: $archive ($(du -h "$archive" | cut -f1))"
  fi
  rm -f "$KAFKA_CDS_DUMP" "$archive.tmp.$$"
}

kafka_jars_ok() {
  [[ -f $KAFKA_CACHED/.k2-ready && -f $KAFKA_JARS/kafka_2.13-$KAFKA_VERSION.jar && -f $KAFKA_JARS/kafka-tools-$KAFKA_VERSION.jar ]]
}

# Resolves the broker's jars with Maven into the tool cache (a copy of the pom
# in a scratch folder, so nothing is written into the work tree). Output goes
# to the caller (a log file).
kafka_fetch() {
  if kafka_jars_ok; then return 0; fi
  local tmp
  mkdir -p "$K2_TEST_CACHE"
  tmp="$(mktemp -d "$K2_TEST_CACHE/.kafka-fetch.XXXXXX")"
  chmod 755 "$tmp"
  cp "$KAFKA_POM" "$tmp/pom.xml"
  echo "resolving Kafka $KAFKA_VERSION jars with Maven into $KAFKA_JARS"
  local repo=()
  [[ -n ${K2_TEST_MAVEN_REPO:-} ]] && repo=("-Dmaven.repo.local=$K2_TEST_MAVEN_REPO")
  # (sed: Maven 3.8 prints ANSI resets even in batch mode.)
  if ! (set -o pipefail; cd "$tmp" && mvn -B -q -Dstyle.color=never "${repo[@]}" -f "$tmp/pom.xml" \
        dependency:copy-dependencies -DoutputDirectory="$tmp/jars" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'); then
    rm -rf "$tmp"
    echo "mvn dependency:copy-dependencies failed"
    return 1
  fi
  local jar
  for jar in kafka_2.13 kafka-tools; do
    if [[ ! -f $tmp/jars/$jar-$KAFKA_VERSION.jar ]]; then
      rm -rf "$tmp"
      echo "Maven did not produce $jar-$KAFKA_VERSION.jar"
      return 1
    fi
  done
  rm -f "$tmp/pom.xml"
  touch "$tmp/.k2-ready"
  # Another checkout sharing the cache may have won the race: keep its copy.
  rm -rf "$KAFKA_CACHED.old"
  if [[ -e $KAFKA_CACHED ]] && ! kafka_jars_ok; then mv -f "$KAFKA_CACHED" "$KAFKA_CACHED.old"; fi
  mv -T "$tmp" "$KAFKA_CACHED" 2>/dev/null || rm -rf "$tmp"
  rm -rf "$KAFKA_CACHED.old"
  echo "Kafka jars: $(ls "$KAFKA_JARS" | wc -l) files, $(du -sh "$KAFKA_JARS" | cut -f1)"
  kafka_jars_ok
}

kafka_pid() { [[ -f $KAFKA_PIDFILE ]] && cat "$KAFKA_PIDFILE"; }

# argv0 PID — the program the process runs, as its command line names it
# (empty while it is between programs in an exec).
argv0() {
  local a=
  { IFS= read -r -d '' a <"/proc/$1/cmdline"; } 2>/dev/null || true
  printf '%s' "$a"
}

# pid_alive PID — running, and not a zombie waiting for its reaper (a detached
# JVM is reparented to init, which may reap it late).
pid_alive() {
  local st
  { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
  st="${st##*) }"
  [[ ${st%% *} != Z ]]
}

# is_kafka_jvm PID — the process is this checkout's broker (kafka.Kafka with our
# server.properties), not whatever reused the pid.
is_kafka_jvm() {
  [[ -n ${1:-} ]] && pid_alive "$1" && [[ "$(argv0 "$1")" != setsid ]] &&
    [[ "$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | tail -n 2 | tr '\n' ' ')" == "kafka.Kafka $KAFKA_PROPS " ]]
}

# The pid file names the broker; if it was lost, a broker found by its command
# line counts too (and gets its pid file back).
kafka_running() {
  local pid
  pid="$(kafka_pid 2>/dev/null)" || true
  is_kafka_jvm "$pid" && return 0
  pid="$(kafka_pids | head -n 1)"
  [[ -n $pid ]] || return 1
  echo "$pid" >"$KAFKA_PIDFILE"
}

# All JVMs running this checkout's broker: the pid file's, plus any whose pid
# file was lost (found by the exact server.properties path on their command line).
kafka_pids() {
  local pid f
  pid="$(kafka_pid 2>/dev/null)" || true
  if is_kafka_jvm "$pid"; then echo "$pid"; fi
  for f in $(grep -lsaF -- "$KAFKA_PROPS" /proc/[0-9]*/cmdline 2>/dev/null); do
    f="${f#/proc/}"; f="${f%/cmdline}"
    [[ $f != "$pid" ]] && is_kafka_jvm "$f" && echo "$f"
  done
  return 0
}

# tcp_open HOST PORT — something accepts connections there.
tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# kafka_answers — the broker answers an ApiVersions (v0) request with error
# code 0. The broker only starts serving requests after it has caught up with
# the metadata log and been unfenced, so an answer means it takes
# CreateTopics/Produce/Fetch. Request: size 12, api key 18, version 0,
# correlation id 0x4b32, client id "k2"; response: size, correlation id, error.
kafka_answers() {
  local out
  out="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" &&
           printf "\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x4b\x32\x00\x02\x6b\x32" >&3 &&
           head -c 10 <&3' "$KAFKA_HOST" "$KAFKA_PORT" 2>/dev/null | od -An -tx1 | tr -d ' \n')" || return 1
  [[ ${#out} == 20 && ${out:8} == 00004b320000 ]]
}

kafka_write_config() {
  mkdir -p "$KAFKA_DIR" "$KAFKA_DATA"
  cp -f "$KAFKA_LOG4J" "$KAFKA_DIR/log4j2.properties"
  cat >"$KAFKA_PROPS.tmp" <<CONF
# K2 test broker, written by scripts/test-services.sh on every start (kafka-start/-restart keep the ports).
# One combined broker + controller (KRaft) on loopback, single replica: plaintext,
# and SASL_SSL and SSL for the tests of secured clients (inter-broker stays plaintext).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_SSL://$KAFKA_HOST:$KAFKA_SASL_PORT,SSL://$KAFKA_HOST:$KAFKA_SSL_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_SSL://$KAFKA_HOST:$KAFKA_SASL_PORT,SSL://$KAFKA_HOST:$KAFKA_SSL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DATA

# SASL_SSL: the test CA's broker certificate; PLAIN users are listed here,
# SCRAM credentials live in the cluster metadata (written at format).
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$TLS_DIR/server.p12
listener.name.sasl_ssl.ssl.keystore.password=$KAFKA_KEYSTORE_PASSWORD
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;

# SSL: the same certificate; clients must present one the test CA signed.
listener.name.ssl.ssl.keystore.type=PKCS12
listener.name.ssl.ssl.keystore.location=$TLS_DIR/server.p12
listener.name.ssl.ssl.keystore.password=$KAFKA_KEYSTORE_PASSWORD
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location=$TLS_DIR/ca.pem
listener.name.ssl.ssl.client.auth=required

# Topics are created explicitly by the code under test.
auto.create.topics.enable=false
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
delete.topic.enable=true

# Internal topics on one broker.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# After a SIGKILL the restarted broker cannot register until the controller
# has timed out the dead one's session (default 9 s): keep that short.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=500

# Small machine (2 cores, 512 MB heap).
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=2
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
CONF
  mv -f "$KAFKA_PROPS.tmp" "$KAFKA_PROPS"
}

# Formats the storage once (new cluster id, the SCRAM user), or again after a
# Kafka version change or on data formatted before the SCRAM user existed
# (test data only, like the PostgreSQL cluster).
kafka_format() {
  if [[ -f $KAFKA_DATA/meta.properties && "$(cat "$KAFKA_DIR/version" 2>/dev/null)" != "$KAFKA_VERSION" ]]; then
    log "Kafka data in $KAFKA_DATA is from Kafka $(cat "$KAFKA_DIR/version" 2>/dev/null || echo '?'), broker is $KAFKA_VERSION: re-creating it (test data only)"
    rm -rf "$KAFKA_DATA"
  fi
  if [[ -f $KAFKA_DATA/meta.properties && ! -f $KAFKA_DIR/scram-users ]]; then
    log "Kafka data in $KAFKA_DATA has no SCRAM user (formatted before the SASL_SSL listener): re-creating it (test data only)"
    rm -rf "$KAFKA_DATA"
  fi
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  mkdir -p "$KAFKA_DATA"
  local id
  # A random cluster id: 16 random bytes, URL-safe base64 without padding,
  # not starting with '-' (the tool would take it for an option; Kafka's own
  # Uuid.randomUuid draws again likewise).
  id=-
  while [[ $id == -* ]]; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)"
  done
  log "formatting Kafka storage in $KAFKA_DATA (cluster id $id)"
  if ! "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -Dkafka.logs.dir="$KAFKA_DIR" \
      -cp "$KAFKA_JARS/*" kafka.tools.StorageTool format -t "$id" -c "$KAFKA_PROPS" \
      --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" \
      >"$KAFKA_DIR/format.log" 2>&1 9>&-; then
    cat "$KAFKA_DIR/format.log" >&2
    die "formatting Kafka storage failed (log: $KAFKA_DIR/format.log)"
  fi
  echo "$KAFKA_VERSION" >"$KAFKA_DIR/version"
  echo "SCRAM-SHA-512 $KAFKA_SASL_USER" >"$KAFKA_DIR/scram-users"
}

# Starts the broker JVM in the background (no waiting: see kafka_wait).
# keep_ports: the ports of the last start (kafka-restart/kafka-start).
kafka_launch() {
  kafka_init_java
  kafka_jars_ok || die "Kafka jars missing from $KAFKA_JARS (run: scripts/test-services.sh start)"
  if kafka_running; then
    log "Kafka already running (pid $(kafka_pid), $KAFKA_HOST:$KAFKA_PORT)"
    return 0
  fi
  if [[ ${1:-} == keep_ports && -f $KAFKA_PROPS ]]; then
    # The ports of the last start, whatever this shell's K2_TEST_KAFKA_*PORT.
    local kport cport sport tport
    kport="$(sed -n 's/^listeners=PLAINTEXT:\/\/[^:]*:\([0-9]*\),.*/\1/p' "$KAFKA_PROPS")"
    cport="$(sed -n 's/^listeners=.*,CONTROLLER:\/\/[^:]*:\([0-9]*\)$/\1/p' "$KAFKA_PROPS")"
    sport="$(sed -n 's/^listeners=.*,SASL_SSL:\/\/[^:]*:\([0-9]*\),.*/\1/p' "$KAFKA_PROPS")"
    if [[ -n $kport && -n $cport ]]; then KAFKA_PORT=$kport KAFKA_CONTROLLER_PORT=$cport; fi
    tport="$(sed -n 's/^listeners=.*,SSL:\/\/[^:]*:\([0-9]*\),.*/\1/p' "$KAFKA_PROPS")"
    if [[ -n $sport ]]; then KAFKA_SASL_PORT=$sport; fi
    if [[ -n $tport ]]; then KAFKA_SSL_PORT=$tport; fi
  fi
  tls_make
  kafka_write_config
  rm -f "$KAFKA_PIDFILE"
  local p
  for p in "$KAFKA_PORT" "$KAFKA_SASL_PORT" "$KAFKA_SSL_PORT" "$KAFKA_CONTROLLER_PORT"; do
    # A broker just killed may still hold its sockets for a moment after
    # its pid is gone: a restart waits for them rather than failing.
    local i
    for ((i = 0; i < 50; i++)); do tcp_open "$KAFKA_HOST" "$p" || break; sleep 0.2; done
    if tcp_open "$KAFKA_HOST" "$p"; then
      die "something else already listens on $KAFKA_HOST:$p (another checkout's broker?): stop it or set K2_TEST_KAFKA_PORT / K2_TEST_KAFKA_SASL_PORT / K2_TEST_KAFKA_SSL_PORT / K2_TEST_KAFKA_CONTROLLER_PORT"
    fi
  done
  kafka_format
  mkdir -p "$LOG_DIR"
  ln -sfn "$KAFKA_DIR/server.log" "$LOG_DIR/kafka.log"
  local cds=() archive
  archive="$(kafka_cds_archive)"
  rm -f "$KAFKA_CDS_DUMP"
  KAFKA_CDS_USED=""
  if [[ ${K2_TEST_KAFKA_CDS:-1} != 1 ]]; then
    :
  elif [[ -f $archive ]]; then
    cds=(-XX:SharedArchiveFile="$archive" '-Xlog:cds*=error')
    KAFKA_CDS_USED="$archive"
  elif "$JAVA" -XX:ArchiveClassesAtExit="$KAFKA_CDS_DUMP" -version >/dev/null 2>&1; then
    # (That probe dumped a tiny archive: this JVM supports dynamic archiving.)
    rm -f "$KAFKA_CDS_DUMP"
    cds=(-XX:ArchiveClassesAtExit="$KAFKA_CDS_DUMP" '-Xlog:cds*=error')
  fi
  log "starting Kafka $KAFKA_VERSION on $KAFKA_HOST:$KAFKA_PORT (SASL_SSL :$KAFKA_SASL_PORT, SSL :$KAFKA_SSL_PORT, controller :$KAFKA_CONTROLLER_PORT, Java $JAVA_MAJOR, data in $KAFKA_DATA)"
  echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) start" >>"$KAFKA_DIR/stdout.log"
  KAFKA_STDOUT_AT=$(stat -c %s "$KAFKA_DIR/stdout.log")
  # Detached like versitygw: own session, no stdin, not holding our lock (fd 9).
  local extra=()
  read -r -a extra <<<"${K2_TEST_KAFKA_JVM_OPTS:-}"
  setsid "$JAVA" "${KAFKA_HEAP[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -XX:ErrorFile="$KAFKA_DIR/hs_err_pid%p.log" \
    "${cds[@]}" "${extra[@]}" -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -Dkafka.logs.dir="$KAFKA_DIR" \
    -cp "$(kafka_classpath)" kafka.Kafka "$KAFKA_PROPS" \
    >>"$KAFKA_DIR/stdout.log" 2>&1 </dev/null 9>&- &
  local pid=$!
  echo "$pid" >"$KAFKA_PIDFILE"
  # Until the child runs java itself (not our shell, not setsid, whose
  # command line ends as java's does): see versitygw's start.
  local deadline=$((SECONDS + 10))
  while pid_alive "$pid" && ! is_kafka_jvm "$pid" && ((SECONDS < deadline)); do sleep 0.02; done
}

kafka_wait() {
  local i t0=$SECONDS timeout=${K2_TEST_KAFKA_START_TIMEOUT:-120}
  for ((i = 0; SECONDS - t0 < timeout; i++)); do
    kafka_answers && break
    if ! kafka_running && [[ -n ${KAFKA_CDS_USED:-} ]] &&
       grep -qE 'fatal error has been detected by the Java Runtime|Error occurred during initialization of VM|shared archive' \
         <<<"$(tail -c "+$((KAFKA_STDOUT_AT + 1))" "$KAFKA_DIR/stdout.log")"; then
      log "the JVM failed with the class-data sharing archive $KAFKA_CDS_USED: deleting it, starting again without"
      sed -n 1,8p <<<"$(tail -c "+$((KAFKA_STDOUT_AT + 1))" "$KAFKA_DIR/stdout.log")" >&2
      rm -f "$KAFKA_CDS_USED"
      kafka_launch keep_ports
      continue
    fi
    if ! kafka_running; then
      tail -n 20 "$KAFKA_DIR/stdout.log" >&2
      grep -E ' (ERROR|FATAL) ' "$KAFKA_DIR/server.log" 2>/dev/null | tail -n 20 >&2
      die "Kafka exited (logs: $KAFKA_DIR/server.log, $KAFKA_DIR/stdout.log)"
    fi
    sleep 0.25
  done
  kafka_answers || die "Kafka does not answer on $KAFKA_HOST:$KAFKA_PORT after ${timeout}s (log: $KAFKA_DIR/server.log)"
  log "Kafka ready: $KAFKA_VERSION on $KAFKA_HOST:$KAFKA_PORT (pid $(kafka_pid), RSS $(kafka_rss))"
}

kafka_rss() { awk '/^VmRSS:/ {printf "%d MB", $2 / 1024}' "/proc/$(kafka_pid)/status" 2>/dev/null || echo '?'; }

# Stops every JVM of this checkout's broker: SIGTERM (a controlled shutdown,
# ~2 s), SIGKILL after K2_TEST_KAFKA_STOP_TIMEOUT (30) seconds; with `kill`,
# SIGKILL at once (a crash: the next start recovers the logs).
# wait_pids_gone SECONDS PID... — true once none of them runs.
wait_pids_gone() {
  local deadline=$((SECONDS + $1)) pid alive; shift
  while :; do
    alive=0
    for pid in "$@"; do pid_alive "$pid" && alive=1; done
    ((alive)) || return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

kafka_stop() {
  local pids pid sig=TERM timeout=${K2_TEST_KAFKA_STOP_TIMEOUT:-30}
  [[ ${1:-} == kill ]] && sig=KILL
  pids="$(kafka_pids)"
  if [[ -n $pids ]]; then
    log "stopping Kafka (pid $(echo $pids), SIG$sig)"
    for pid in $pids; do kill "-$sig" "$pid" 2>/dev/null || true; done
    # shellcheck disable=SC2086
    if ! wait_pids_gone "$timeout" $pids; then
      for pid in $pids; do
        if pid_alive "$pid"; then
          log "Kafka pid $pid still running after ${timeout}s: SIGKILL"
          kill -KILL "$pid" 2>/dev/null || true
        fi
      done
      sig=KILL
      # shellcheck disable=SC2086
      wait_pids_gone 20 $pids || die "Kafka (pid $(echo $pids)) survives SIGKILL"
    fi
  fi
  rm -f "$KAFKA_PIDFILE"
  if [[ $sig == KILL ]]; then rm -f "$KAFKA_CDS_DUMP"; else kafka_cds_collect; fi
}

# ---------------------------------------------------------------- promtool --

promtool_ensure() {
  ensure_cmd promtool prometheus
  PROMTOOL="$(command -v promtool)"
  log "promtool ready: $("$PROMTOOL" --version 2>&1 | head -n 1) ($PROMTOOL)"
  ensure_cmd systemd-analyze systemd
}

# ----------------------------------------------------------------- browser --

# The dashboard's browser test drives Debian's Chromium with Playwright
# (playwright-core and axe-core, from web/package-lock.json).
CHROMIUM="$(command -v chromium 2>/dev/null || echo /usr/bin/chromium)"
WEB_DIR="$REPO_ROOT/web"

browser_ensure() {
  ensure_cmd chromium chromium
  CHROMIUM="$(command -v chromium)"
  log "Chromium ready: $("$CHROMIUM" --version 2>/dev/null | head -n 1) ($CHROMIUM)"
}

# web_deps installs web/'s npm packages as its lock file pins them, when
# they are missing or older than the lock file.
web_deps() {
  [[ -f $WEB_DIR/package-lock.json ]] || return 0
  if [[ -f $WEB_DIR/node_modules/.package-lock.json && ! $WEB_DIR/package-lock.json -nt $WEB_DIR/node_modules/.package-lock.json ]]; then
    return 0
  fi
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  log "installing the dashboard's npm packages (npm ci in $WEB_DIR)"
  (cd "$WEB_DIR" && npm ci --no-audit --no-fund --loglevel=error)
}

# -------------------------------------------------------------------- env --

env_lines() {
  # The tools run on the broker's Java (found, never installed, here).
  [[ -n $JAVA ]] || find_java || true
  cat <<EOF
export K2_TEST_HOME='$K2_TEST_HOME'
export K2_TEST_POSTGRES_URL='postgres://$PG_ROLE:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB?sslmode=disable'
export K2_TEST_POSTGRES_TLS_URL='postgres://$PG_ROLE:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB?sslmode=verify-full&sslrootcert=$TLS_DIR/ca.pem'
export K2_TEST_S3_ENDPOINT='$S3_ENDPOINT'
export K2_TEST_S3_BUCKET='$S3_BUCKET'
export K2_TEST_S3_ACCESS_KEY='$S3_ACCESS_KEY'
export K2_TEST_S3_SECRET_KEY='$S3_SECRET_KEY'
export K2_TEST_S3_REGION='$S3_REGION'
export K2_TEST_PYTHON='$PYTHON'
export K2_TEST_PROMTOOL='$PROMTOOL'
export K2_TEST_KAFKA_BROKERS='$KAFKA_HOST:$KAFKA_PORT'
export K2_TEST_KAFKA_TOOLS='$KAFKA_JARS'
export K2_TEST_JAVA='$JAVA'
export K2_TEST_KAFKA_SASL_BROKERS='$KAFKA_HOST:$KAFKA_SASL_PORT'
export K2_TEST_KAFKA_SSL_BROKERS='$KAFKA_HOST:$KAFKA_SSL_PORT'
export K2_TEST_CA_FILE='$TLS_DIR/ca.pem'
export K2_TEST_CLIENT_CERT_FILE='$TLS_DIR/client.pem'
export K2_TEST_CLIENT_KEY_FILE='$TLS_DIR/client.key'
export K2_TEST_KAFKA_SASL_USER='$KAFKA_SASL_USER'
export K2_TEST_KAFKA_SASL_PASSWORD='$KAFKA_SASL_PASSWORD'
export K2_TEST_CHROMIUM='$CHROMIUM'
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

  # Kafka's jars come from Maven in the background too; when they are cached
  # already, the broker JVM starts now and warms up meanwhile.
  local kafka_fetch_pid="" kafka_launched=0
  if kafka_jars_ok; then
    kafka_launch
    kafka_launched=1
  else
    command -v mvn >/dev/null 2>&1 || apt_install maven
    kafka_init_java
    log "fetching Kafka $KAFKA_VERSION jars with Maven in the background (log: $LOG_DIR/kafka-fetch.log)"
    kafka_fetch >"$LOG_DIR/kafka-fetch.log" 2>&1 &
    kafka_fetch_pid=$!
  fi

  local web_pid=""
  if [[ -f $WEB_DIR/package-lock.json ]]; then
    web_deps >"$LOG_DIR/web-deps.log" 2>&1 &
    web_pid=$!
  fi

  promtool_ensure
  browser_ensure
  pg_start
  s3_start

  if [[ -n $kafka_fetch_pid ]]; then
    if ! wait "$kafka_fetch_pid"; then
      tail -n 40 "$LOG_DIR/kafka-fetch.log" >&2
      die "fetching Kafka's jars failed (log: $LOG_DIR/kafka-fetch.log)"
    fi
    log "Kafka jars ready in $KAFKA_JARS"
  fi
  if ((!kafka_launched)); then kafka_launch; fi

  if [[ -n $venv_pid ]]; then
    if ! wait "$venv_pid"; then
      tail -n 40 "$LOG_DIR/venv-setup.log" >&2
      die "PyIceberg venv setup failed (log: $LOG_DIR/venv-setup.log)"
    fi
    venv_link
  fi
  if [[ -n $web_pid ]]; then
    if ! wait "$web_pid"; then
      tail -n 40 "$LOG_DIR/web-deps.log" >&2
      die "installing the dashboard's npm packages failed (log: $LOG_DIR/web-deps.log)"
    fi
    log "dashboard's npm packages ready in $WEB_DIR/node_modules"
  fi
  log "PyIceberg ready: $("$PYTHON" -c 'import pyiceberg, pyarrow; print("pyiceberg", pyiceberg.__version__, "pyarrow", pyarrow.__version__)') ($PYTHON)"
  kafka_wait

  env_lines >"$ENV_FILE.tmp"
  mv -f "$ENV_FILE.tmp" "$ENV_FILE"
  log "services up; env in $ENV_FILE (or: eval \"\$(scripts/test-services.sh env)\")"
}

cmd_stop() {
  [[ -d $K2_TEST_HOME ]] || return 0
  rm -f "$ENV_FILE"
  kafka_stop
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
  if kafka_running; then
    echo "kafka:     running on $KAFKA_HOST:$KAFKA_PORT, SASL_SSL :$KAFKA_SASL_PORT, SSL :$KAFKA_SSL_PORT (pid $(kafka_pid), Kafka $KAFKA_VERSION, RSS $(kafka_rss))"
  else
    echo "kafka:     stopped"; rc=1
  fi
  if [[ -x $PYTHON ]]; then echo "python:    $PYTHON"; else echo "python:    not set up"; rc=1; fi
  return $rc
}

cmd_reset() {
  cmd_stop
  if [[ -L $PG_DATA ]]; then rm -rf "$(readlink -f "$PG_DATA")" "$(readlink -f "$PG_DATA").log"; fi
  rm -rf "$PG_DATA" "$S3_ROOT" "$KAFKA_DIR" "$TLS_DIR" "$LOG_DIR" "$S3_PIDFILE" "$ENV_FILE" "$K2_TEST_HOME/bin" "$VENV_LINK"
  log "service data deleted from $K2_TEST_HOME (tool cache kept in $K2_TEST_CACHE)"
}

# kafka-stop [--kill], kafka-start, kafka-restart [--kill]: for tests that
# check what a broker outage or restart does (testsvc.RestartKafka). They
# reuse the data and the ports of the last start, hold the same lock
# as start, and leave PostgreSQL and S3 alone. --kill stops with SIGKILL (a
# crash) instead of a controlled shutdown.
kafka_lock() {
  [[ -f $KAFKA_PROPS ]] || die "Kafka was never started in $K2_TEST_HOME (run: scripts/test-services.sh start)"
  exec 9>"$K2_TEST_HOME/.lock"
  flock -w 900 9 || die "another test-services.sh holds $K2_TEST_HOME/.lock"
}

kill_arg() {
  case "${1:-}" in
    "") echo "" ;;
    --kill) echo kill ;;
    *) die "unknown argument: $1 (want --kill or nothing)" ;;
  esac
}

cmd_kafka_stop() { local k; k="$(kill_arg "${1:-}")"; kafka_lock; kafka_stop "$k"; }
# kafka-fetch: the jars a changed scripts/kafka/pom.xml names, fetched while
# the services keep running (a running broker keeps the jars it started with).
cmd_kafka_fetch() {
  mkdir -p "$K2_TEST_CACHE" "$LOG_DIR"
  command -v mvn >/dev/null 2>&1 || apt_install maven
  if ! kafka_fetch >"$LOG_DIR/kafka-fetch.log" 2>&1; then
    tail -n 40 "$LOG_DIR/kafka-fetch.log" >&2
    die "fetching Kafka's jars failed (log: $LOG_DIR/kafka-fetch.log)"
  fi
  log "Kafka jars ready in $KAFKA_JARS"
}

cmd_kafka_start() { kafka_lock; kafka_launch keep_ports; kafka_wait; }
cmd_kafka_restart() {
  local k t0=$SECONDS; k="$(kill_arg "${1:-}")"
  kafka_lock
  kafka_stop "$k"
  kafka_launch keep_ports
  kafka_wait
  log "Kafka restarted in $((SECONDS - t0))s"
}

# The verbs of k2 ops drill --service-control: SIGKILL a service (a crash;
# its data stays) or start it again on its data and ports. They hold the
# same lock as start and return once the service answers.
service_lock() {
  exec 9>"$K2_TEST_HOME/.lock"
  flock -w 900 9 || die "another test-services.sh holds $K2_TEST_HOME/.lock"
}

cmd_postgres_kill() {
  [[ -f $PG_DATA/PG_VERSION ]] || die "PostgreSQL was never started in $K2_TEST_HOME"
  pg_init_bin noinstall || die "PostgreSQL server binaries not found"
  pg_init_user
  service_lock
  local pid i
  pid="$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
  if [[ -n $pid ]] && pid_alive "$pid"; then
    log "killing PostgreSQL (postmaster pid $pid, SIGKILL)"
    kill -KILL "$pid"
  fi
  # Gone once pg_ctl sees no server: the postmaster reaped (init may be
  # slow to) and its backends, which exit when it dies, gone too.
  for ((i = 0; i < 300; i++)); do
    pg_running || return 0
    sleep 0.1
  done
  die "PostgreSQL still running 30 s after SIGKILL"
}

cmd_postgres_start() {
  mkdir -p "$LOG_DIR"
  service_lock
  pg_start
}

cmd_s3_kill() {
  service_lock
  if s3_running; then
    local pid; pid="$(s3_pid)"
    log "killing versitygw (pid $pid, SIGKILL)"
    kill -KILL "$pid"
    wait_pids_gone 20 "$pid" || die "versitygw (pid $pid) survives SIGKILL"
  fi
  rm -f "$S3_PIDFILE"
}

cmd_s3_start() {
  mkdir -p "$LOG_DIR"
  service_lock
  s3_start
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) env_lines ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  kafka-stop) cmd_kafka_stop "${2:-}" ;;
  kafka-start) cmd_kafka_start ;;
  kafka-restart) cmd_kafka_restart "${2:-}" ;;
  kafka-fetch) cmd_kafka_fetch ;;
  kafka-kill) cmd_kafka_stop --kill ;;
  postgres-kill) cmd_postgres_kill ;;
  postgres-start) cmd_postgres_start ;;
  s3-kill) cmd_s3_kill ;;
  s3-start) cmd_s3_start ;;
  *)
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
