// Builds the console into the Python package (loop_server/console_static/).
// `node build.mjs` writes it; `node build.mjs --check` builds into a temp dir and fails when
// the committed files differ from what the sources produce (CI runs it).
import { build } from "esbuild";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const committed = join(here, "..", "loop_server", "console_static");
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "console-build-")) : committed;

if (!check) {
  rmSync(out, { recursive: true, force: true });
}
mkdirSync(join(out, "console"), { recursive: true });

await build({
  entryPoints: { app: join(here, "src", "main.js") },
  bundle: true,
  minify: true,
  // No source maps and no absolute paths in the output: the build must be byte-identical on
  // every machine so the committed files can be checked against the sources.
  sourcemap: false,
  legalComments: "linked",
  format: "esm",
  target: ["chrome110", "firefox110", "safari16"],
  outdir: join(out, "console"),
  logLevel: "warning",
});
cpSync(join(here, "src", "index.html"), join(out, "index.html"));
cpSync(join(here, "src", "favicon.svg"), join(out, "console", "favicon.svg"));

if (check) {
  const files = (dir) =>
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1))
      .filter((name) => name !== "__init__.py")
      .sort();
  const built = files(out);
  const have = files(committed);
  const stale = built.filter(
    (name) => !have.includes(name) || !readFileSync(join(out, name)).equals(readFileSync(join(committed, name)))
  );
  const extra = have.filter((name) => !built.includes(name));
  rmSync(out, { recursive: true, force: true });
  if (stale.length || extra.length) {
    console.error(
      `loop_server/console_static is not the build of console/src (run make console): ` +
        [...stale.map((n) => `differs: ${n}`), ...extra.map((n) => `extra: ${n}`)].join(", ")
    );
    process.exit(1);
  }
  console.log("console build matches its sources");
}
