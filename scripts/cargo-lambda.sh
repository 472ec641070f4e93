#!/usr/bin/env bash
# cargo-lambda.sh — run cargo-lambda from the repository's tools venv.
#
#   scripts/cargo-lambda.sh install        install cargo-lambda (PyPI, brings zig) into
#                                          .venv-tools if it is missing, then exit
#   scripts/cargo-lambda.sh ARGS…          install if missing, then `cargo lambda ARGS…`
#
# Examples (what `make lambda`, `make lambda-x86` and `make test-lambda` use):
#
#   scripts/cargo-lambda.sh build --release --arm64 --output-format zip -p runway-server
#   scripts/cargo-lambda.sh watch --invoke-port 9000
#   scripts/cargo-lambda.sh invoke runway --data-file event.json
#
# The PyPI package `cargo-lambda` ships the cargo-lambda binary and `ziglang`, which
# cargo-lambda uses as the cross linker, so nothing outside the venv is installed.
# The venv is shared with other tools (checkov, zizmor): `pip install` only adds.
# Progress and errors go to stderr; stdout is cargo-lambda's own.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-tools"
BIN="$VENV/bin/cargo-lambda"

say() { printf 'cargo-lambda.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

install() {
  if [[ -x "$BIN" ]]; then
    return 0
  fi
  command -v python3 >/dev/null || die "python3 is required (apt-get install python3 python3-venv)"
  if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
  fi
  say "installing cargo-lambda (and zig) into $VENV (once)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check cargo-lambda \
    || die "pip install cargo-lambda failed"
  [[ -x "$BIN" ]] || die "$BIN is missing after the install"
}

# An arm64 build needs the Rust standard library for aarch64 (zig only links). Say so
# plainly instead of letting cargo fail deep in the build.
needs_arm64_std() {
  local arg
  for arg in "$@"; do
    [[ "$arg" == "--arm64" || "$arg" == "aarch64-unknown-linux-gnu" ]] && return 0
  done
  return 1
}

install
if [[ "${1:-}" == "install" ]]; then
  exit 0
fi
if [[ "${1:-}" == "build" ]] && needs_arm64_std "$@" && command -v rustup >/dev/null \
  && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  die "the Rust standard library for aarch64-unknown-linux-gnu is not installed: run \
'rustup target add aarch64-unknown-linux-gnu' (it downloads it), or build for x86_64 \
with 'make lambda-x86' and deploy with lambda_architecture = \"x86_64\""
fi
# cargo-lambda finds zig through PATH (the venv's `python -m ziglang` wrapper).
export PATH="$VENV/bin:$PATH"
exec "$BIN" lambda "$@"
