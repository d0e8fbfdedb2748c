// Builds the dashboard into ui/dist (run by `npm run build`): esbuild
// bundles src/main.ts (with connect-web and the generated code from
// sdks/typescript/src/gen) and src/style.css into assets/ under names that
// carry their content hash, which the server caches as immutable; then
// index.html is written naming them (the server revalidates it on each
// load). Usage: node ui/build.mjs
import { build } from "esbuild";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");
await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
const result = await build({
  entryPoints: { main: path.join(here, "src/main.ts"), style: path.join(here, "src/style.css") },
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  outdir: path.join(dist, "assets"),
  entryNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
  legalComments: "none",
});
const outputs = Object.keys(result.metafile.outputs).map((p) => path.relative(dist, path.resolve(p)).split(path.sep).join("/"));
const js = outputs.find((p) => /^assets\/main-[A-Z0-9]+\.js$/.test(p));
const css = outputs.find((p) => /^assets\/style-[A-Z0-9]+\.css$/.test(p));
if (js === undefined || css === undefined) throw new Error(`ui/build.mjs: esbuild wrote ${outputs.join(", ")}: no main-HASH.js and style-HASH.css`);
const html = (await readFile(path.join(here, "src/index.html"), "utf8")).replace("{{js}}", js).replace("{{css}}", css);
await writeFile(path.join(dist, "index.html"), html);
const sizes = Object.entries(result.metafile.outputs).map(([p, o]) => `${path.basename(p)} ${(o.bytes / 1024).toFixed(0)} KiB`);
console.log(`ui: built ${path.relative(process.cwd(), dist) || "."}: index.html, ${sizes.join(", ")}`);
