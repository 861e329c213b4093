#!/usr/bin/env bash
# scripts/test.sh — K2's full test suite, against real services.
#
#   scripts/test.sh                         go test ./... (all packages)
#   scripts/test.sh -run TestLake -v        extra go test flags
#   scripts/test.sh ./internal/lake/ -v     given packages instead of ./...
#
# Starts PostgreSQL, the S3 server, the Kafka broker and the PyIceberg venv
# with scripts/test-services.sh, exports their settings (K2_TEST_*), sets
# K2_TEST_REQUIRE_SERVICES=1 so that a test needing a missing service, or
# the shared market data (../shared/data, K2_SHARED_DATA), fails instead of
# skipping, and runs go test with a 25-minute timeout (a -timeout
# flag given here wins); the dashboard's screenshots are kept in
# $K2_TEST_HOME/artifacts (K2_TEST_ARTIFACTS). The services are stopped on exit, unless
# K2_KEEP_SERVICES=1 or they were already running before this script started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
svc=scripts/test-services.sh
export K2_TEST_HOME="${K2_TEST_HOME:-$PWD/.k2-test}"

was_running=0
if "$svc" status >/dev/null 2>&1; then was_running=1; fi

cleanup() {
  local rc=$?
  if [[ ${K2_KEEP_SERVICES:-0} == 1 ]]; then
    echo "== services left running (K2_KEEP_SERVICES=1); stop with: $svc stop"
  elif [[ $was_running == 1 ]]; then
    echo "== services left running (they were running before); stop with: $svc stop"
  else
    echo "== stopping services"
    "$svc" stop || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting test services ($K2_TEST_HOME)"
t0=$SECONDS
"$svc" start
echo "== services ready in $((SECONDS - t0))s"

# shellcheck source=/dev/null
source "$K2_TEST_HOME/env.sh"
export K2_TEST_REQUIRE_SERVICES=1
# What a run keeps to look at afterwards: the dashboard's screenshots.
export K2_TEST_ARTIFACTS="${K2_TEST_ARTIFACTS:-$K2_TEST_HOME/artifacts}"

# Packages: ./... unless the arguments name some.
pkgs=(./...)
for a in "$@"; do
  case "$a" in
    ./* | ../* | ... | github.com/*) pkgs=(); break ;;
  esac
done

echo "== go test -timeout 25m ${pkgs[*]:+${pkgs[*]} }$*"
t0=$SECONDS
rc=0
go test -timeout 25m "${pkgs[@]}" "$@" || rc=$?
echo "== go test finished in $((SECONDS - t0))s with exit code $rc"
if compgen -G "$K2_TEST_ARTIFACTS/*.png" >/dev/null; then
  echo "== screenshots kept in $K2_TEST_ARTIFACTS: $(cd "$K2_TEST_ARTIFACTS" && echo *.png)"
fi
exit "$rc"
