// Bundles the console into dist/ (or --outdir DIR): app.js from src/main.ts, and
// the static index.html, style.css and favicon.svg copied as they are. The output depends only
// on the sources and the pinned esbuild, so it is committed and compared by
// web's Go test (TestBundleIsFresh).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const i = process.argv.indexOf("--outdir");
const outdir = i >= 0 ? process.argv[i + 1] : "dist";
if (!outdir) {
  console.error("build.mjs: --outdir needs a directory");
  process.exit(2);
}
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: ["src/main.ts"],
  outfile: join(outdir, "app.js"),
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
for (const f of ["index.html", "style.css", "favicon.svg"]) {
  copyFileSync(join("src", f), join(outdir, f));
}
