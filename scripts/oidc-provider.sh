#!/usr/bin/env bash
# oidc-provider.sh — a real OpenID provider for Runway's OIDC tests (npm
# `oidc-provider`, tests/oidc/provider.mjs).
#
#   scripts/oidc-provider.sh install   `npm ci` in tests/oidc, if node_modules is
#                                      missing or older than the lock file
#   scripts/oidc-provider.sh run CMD…  start two providers on free loopback ports,
#                                      run CMD with RUNWAY_TEST_OIDC_ISSUER (the
#                                      provider) and RUNWAY_TEST_OIDC_EXPIRED_ISSUER
#                                      (one whose clock is 10 minutes behind, so
#                                      its ID tokens arrive expired) set, stop both
#                                      (even if CMD fails or is interrupted), and
#                                      exit with CMD's status
#
# Nothing is ever skipped: if node, npm or the provider fail, this exits non-zero
# and says why, and the tests that need the issuer fail loudly without it. Each
# provider's output is kept in tests/oidc/.run/ (git-ignored) for a failed run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/tests/oidc"
STATE="$DIR/.run"
# How long `run` waits for a provider to print its issuer, in tenths of a second.
START_TIMEOUT_TENTHS=200

say() { printf 'oidc-provider.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

install() {
  command -v node >/dev/null || die "node is required (the CI machine installs nodejs)"
  command -v npm >/dev/null || die "npm is required"
  if [[ -d "$DIR/node_modules/oidc-provider" && "$DIR/node_modules" -nt "$DIR/package-lock.json" ]]; then
    return
  fi
  say "installing oidc-provider into tests/oidc/node_modules (npm ci)"
  npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error >&2 || die "npm ci in tests/oidc failed"
  touch "$DIR/node_modules"
}

PIDS=()

stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# start NAME [ARGS…]: starts a provider and waits for its issuer, left in ISSUER.
# (Not a command substitution: that would run it in a subshell, and its PID would
# never reach PIDS to be stopped.)
ISSUER=""
start() {
  local name="$1"
  shift
  local out="$STATE/$name.out" log="$STATE/$name.log"
  : >"$out"
  node "$DIR/provider.mjs" "$@" >"$out" 2>"$log" &
  PIDS+=("$!")
  local pid="$!" tenths=0 issuer=""
  while [[ -z "$issuer" ]]; do
    kill -0 "$pid" 2>/dev/null || die "the $name provider exited; its log: $(cat "$log")"
    ((tenths++ < START_TIMEOUT_TENTHS)) || die "the $name provider did not start in time; its log: $(cat "$log")"
    sleep 0.1
    issuer="$(sed -n 's/^OIDC_ISSUER=//p' "$out")"
  done
  ISSUER="$issuer"
}

run() {
  (($# > 0)) || die "usage: scripts/oidc-provider.sh run CMD…"
  install
  mkdir -p "$STATE"
  trap stop_all EXIT
  trap 'stop_all; exit 130' INT TERM
  local issuer expired
  start provider
  issuer="$ISSUER"
  start expired --clock-skew-seconds 600
  expired="$ISSUER"
  say "providers at $issuer and (10 minutes behind) $expired"
  local status=0
  RUNWAY_TEST_OIDC_ISSUER="$issuer" RUNWAY_TEST_OIDC_EXPIRED_ISSUER="$expired" "$@" || status=$?
  exit "$status"
}

case "${1:-}" in
  install) install ;;
  run) shift; run "$@" ;;
  *) die "usage: scripts/oidc-provider.sh install | run CMD…" ;;
esac
