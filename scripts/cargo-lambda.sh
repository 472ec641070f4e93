#!/usr/bin/env bash
# cargo-lambda.sh — run cargo-lambda from the repository's tools venv.
#
#   scripts/cargo-lambda.sh install        install cargo-lambda (PyPI, brings zig) into
#                                          .venv-tools from its hash-checked lock file if it
#                                          is missing or changed, then exit
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
# Both are pinned: a new release of either (a new zig can link differently) should
# be a deliberate upgrade, not something a CI run picks up. The venv is shared with
# other tools (checkov, zizmor): `pip install` only adds.
#
# An arm64 build (`--arm64`, or `--target aarch64-unknown-linux-gnu`) needs the Rust
# standard library for aarch64-unknown-linux-gnu; if rustup lacks it, this script
# runs `rustup target add aarch64-unknown-linux-gnu` first (a download from
# rustup's own server) and stops with what to do only if that fails.
# Progress and errors go to stderr; stdout is cargo-lambda's own.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-tools"
BIN="$VENV/bin/cargo-lambda"
# cargo-lambda and ziglang, pinned with hashes in scripts/requirements/lambda.txt
# (see the header). To upgrade: change lambda.in, recompile it (scripts/pip-locked.sh
# says how), and run `make lambda` and `make test-lambda`.
# shellcheck source=scripts/pip-locked.sh
source "$ROOT/scripts/pip-locked.sh"
ARM64_TARGET="aarch64-unknown-linux-gnu"

say() { printf 'cargo-lambda.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

install() {
  pip_locked_install "$VENV" lambda "cargo-lambda and zig" || die "installing cargo-lambda failed"
  [[ -x "$BIN" ]] || die "$BIN is missing after the install"
}

# An arm64 build needs the Rust standard library for aarch64 (zig only links).
needs_arm64_std() {
  local arg
  for arg in "$@"; do
    [[ "$arg" == "--arm64" || "$arg" == "$ARM64_TARGET" || "$arg" == "--target=$ARM64_TARGET" ]] && return 0
  done
  return 1
}

# Adds the aarch64 standard library with rustup when it is missing; if that fails,
# says what to do instead of letting cargo fail deep in the build.
has_arm64_std() {
  # No `grep -q`: under pipefail an early exit could fail the pipeline by SIGPIPE.
  rustup target list --installed 2>/dev/null | grep -x "$ARM64_TARGET" >/dev/null
}

ensure_arm64_std() {
  command -v rustup >/dev/null || return 0 # not a rustup toolchain: cargo will say
  if has_arm64_std; then
    return 0
  fi
  say "the Rust standard library for $ARM64_TARGET is missing; running 'rustup target add $ARM64_TARGET'"
  if rustup target add "$ARM64_TARGET" >&2 && has_arm64_std; then
    return 0
  fi
  die "the Rust standard library for $ARM64_TARGET is not installed and \
'rustup target add $ARM64_TARGET' failed (it downloads it; output above): run it \
where it can reach rustup's server, or build for x86_64 with 'make lambda-x86' and \
deploy with lambda_architecture = \"x86_64\""
}

install
if [[ "${1:-}" == "install" ]]; then
  exit 0
fi
if [[ "${1:-}" == "build" ]] && needs_arm64_std "$@"; then
  ensure_arm64_std
fi
# cargo-lambda finds zig through PATH (the venv's `python -m ziglang` wrapper).
export PATH="$VENV/bin:$PATH"
exec "$BIN" lambda "$@"
