#!/usr/bin/env bash
# vendor-swagger-ui.sh — refresh the Swagger UI files that `/docs` serves from the binary.
#
#   scripts/vendor-swagger-ui.sh VERSION SHA512-INTEGRITY
#
# Fetches the npm package `swagger-ui-dist@VERSION` with `npm pack` (which installs
# nothing and runs no package script), refuses it unless its tarball's integrity is
# the SHA512-INTEGRITY given (read it with `npm view swagger-ui-dist@VERSION
# dist.integrity` and compare with the project's release notes), and copies the two
# files the page needs, with the licences, into crates/runway-api/assets/swagger-ui/.
# It then prints the SHA-256 of each file: put them, the version and the integrity in
# crates/runway-api/src/docs.rs (`SWAGGER_UI_VERSION`, and `SWAGGER_UI_INTEGRITY` and
# `PINNED` in its tests) and in the README beside the files; a test checks that the
# embedded bytes match.

set -euo pipefail

say() { printf 'vendor-swagger-ui: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 VERSION SHA512-INTEGRITY"
VERSION="$1"
WANT="$2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/crates/runway-api/assets/swagger-ui"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/runway-swagger-ui.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

command -v npm >/dev/null || die "npm is needed"
say "fetching swagger-ui-dist@$VERSION"
GOT="$(cd "$WORK" && npm pack --silent --json "swagger-ui-dist@$VERSION" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].integrity))')"
[[ "$GOT" == "$WANT" ]] || die "integrity is $GOT, expected $WANT"
tar -xzf "$WORK/swagger-ui-dist-$VERSION.tgz" -C "$WORK"
mkdir -p "$DEST"
for file in swagger-ui-bundle.js swagger-ui.css swagger-ui-bundle.js.LICENSE.txt LICENSE NOTICE; do
    cp "$WORK/package/$file" "$DEST/$file"
done
say "copied into $DEST; SHA-256:"
(cd "$DEST" && sha256sum swagger-ui-bundle.js swagger-ui.css)
