# pip-locked.sh — sourced by the scripts that install Python tools from PyPI.
#
#   pip_locked_install VENV NAME [WHAT]
#
# installs scripts/requirements/NAME.txt into the venv VENV (creating it), with
# `pip install --require-hashes --no-deps`: every package, dependencies included, is
# pinned to one version and to the sha256 of its files, so a compromised or
# re-uploaded release on the index fails the install instead of running here or in
# CI. A stamp in the venv records the lock file's own sha256, so the install runs
# once per change of the lock file (LOCKED_REINSTALL=1 forces it).
#
# The lock files are compiled from NAME.in by pip-tools, for CPython 3.11 on Linux
# (the interpreter CI and the workflows use):
#
#   python3 -m venv /tmp/piptools && /tmp/piptools/bin/pip install pip-tools
#   cd scripts/requirements
#   /tmp/piptools/bin/pip-compile --generate-hashes --allow-unsafe --strip-extras \
#     --no-header --no-emit-find-links --output-file NAME.txt NAME.in
#
# (`--no-emit-find-links`: a pip configured with local wheel directories would
# otherwise write them into the lock file as `--find-links` lines.)
#
# To upgrade a tool: change its pin in NAME.in, recompile, and run what uses it.

pip_locked_install() {
  local venv=$1 name=$2 what=${3:-$2}
  local root lock sum stamp
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  lock="$root/scripts/requirements/$name.txt"
  [[ -f "$lock" ]] || { printf 'pip-locked: no lock file %s\n' "$lock" >&2; return 1; }
  sum="$(sha256sum "$lock" | cut -d' ' -f1)"
  stamp="$venv/.locked-$name-$sum"
  if [[ -f "$stamp" && -z "${LOCKED_REINSTALL:-}" ]]; then
    return 0
  fi
  command -v python3 >/dev/null || {
    printf 'pip-locked: python3 is required (apt-get install python3 python3-venv)\n' >&2
    return 1
  }
  if [[ ! -x "$venv/bin/python" ]]; then
    printf 'pip-locked: creating %s\n' "$venv" >&2
    python3 -m venv "$venv" || {
      printf 'pip-locked: python3 -m venv failed (apt-get install python3-venv)\n' >&2
      return 1
    }
  fi
  printf 'pip-locked: installing %s from scripts/requirements/%s.txt (hash-checked) into %s\n' \
    "$what" "$name" "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-hashes --no-deps -r "$lock" || {
    printf 'pip-locked: pip install --require-hashes -r %s failed\n' "$lock" >&2
    return 1
  }
  rm -f "$venv/.locked-$name-"*
  touch "$stamp"
}
