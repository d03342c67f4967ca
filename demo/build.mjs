// Builds the demo page into dist/: dist/demo.js (src/main.ts and the
// TypeScript SDK's sources, bundled and minified by esbuild) and
// dist/index.html (a copy of index.html, which holds the CSS inline).
// The server embeds both files at compile time and serves them at `GET /`
// and `GET /demo.js`. The output is committed, so it must be byte-for-byte
// reproducible: no source map, no legal comments, no timestamps or paths.
import { copyFile, mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");

/**
 * Resolves `@bufbuild/protobuf` (imported by the SDK's sources under
 * clients/typescript/src) from demo/node_modules, the version pinned in
 * package-lock.json, rather than from whatever node_modules happens to lie
 * above the SDK (its own, or the repository root's), so the bundle does not
 * depend on what else was installed.
 */
const pinnedProtobuf = {
  name: "pinned-protobuf",
  setup(build) {
    build.onResolve({ filter: /^@bufbuild\/protobuf(\/|$)/ }, (args) => {
      if (args.pluginData === "pinned") {
        return undefined;
      }
      return build
        .resolve(args.path, { kind: args.kind, resolveDir: here, pluginData: "pinned" })
        .then((r) => (r.errors.length > 0 ? { errors: r.errors } : { path: r.path, sideEffects: r.sideEffects }));
    });
  },
};

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: [join(here, "src/main.ts")],
  outfile: join(dist, "demo.js"),
  bundle: true,
  format: "iife",
  platform: "browser",
  target: "es2020",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  plugins: [pinnedProtobuf],
  metafile: true,
  logLevel: "warning",
});

// The browser entry of the SDK (index.ts) must never pull in `ws` or the
// Node entry (node.ts).
const inputs = Object.keys(result.metafile.inputs);
const nodeOnly = inputs.filter((p) => /(^|\/)node_modules\/ws\//.test(p) || p.endsWith("clients/typescript/src/node.ts"));
if (nodeOnly.length > 0) {
  throw new Error(`the browser bundle pulled in Node-only modules: ${nodeOnly.join(", ")}`);
}
const protobuf = inputs.filter((p) => p.includes("@bufbuild/protobuf/"));
if (protobuf.some((p) => !p.startsWith("node_modules/@bufbuild/protobuf/"))) {
  throw new Error(`@bufbuild/protobuf was not taken from demo/node_modules: ${protobuf.join(", ")}`);
}

await mkdir(dist, { recursive: true });
await copyFile(join(here, "index.html"), join(dist, "index.html"));

const js = await readFile(join(dist, "demo.js"));
const html = await readFile(join(dist, "index.html"));
console.log(`dist/demo.js ${js.byteLength} bytes, dist/index.html ${html.byteLength} bytes`);
