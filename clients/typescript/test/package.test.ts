/**
 * The built package (dist/, made by `tsc -p tsconfig.json` before the tests):
 * the "node" export brings `ws`, the default (browser) export never reaches
 * it, and the type declarations keep the public surface small.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = join(pkgDir, "dist");

/** Every module reachable from `entry` through relative imports, and the bare specifiers they import. */
function graph(entry: string): { files: Set<string>; bare: Set<string> } {
  const files = new Set<string>();
  const bare = new Set<string>();
  const todo = [entry];
  for (let file = todo.pop(); file !== undefined; file = todo.pop()) {
    if (files.has(file)) continue;
    files.add(file);
    const src = readFileSync(file, "utf8");
    for (const m of src.matchAll(/(?:import|export)[^"']*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
      const spec = m[1] ?? m[2] ?? "";
      if (spec.startsWith(".")) {
        todo.push(resolve(dirname(file), spec));
      } else {
        bare.add(spec);
      }
    }
  }
  return { files, bare };
}

test("package: the browser entry never imports ws; the node entry does", () => {
  assert.ok(existsSync(join(dist, "index.js")), "dist/ is built");
  const browser = graph(join(dist, "index.js"));
  assert.ok(!browser.bare.has("ws"), `browser entry imports: ${[...browser.bare].join(", ")}`);
  assert.deepEqual([...browser.bare].filter((s) => !s.startsWith("@bufbuild/protobuf")), []);
  const node = graph(join(dist, "node.js"));
  assert.ok(node.bare.has("ws"));
});

test("package: self-import through the exports map gives the node build", async () => {
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as {
    name: string;
    dependencies: Record<string, string>;
  };
  assert.equal(pkg.dependencies["@bufbuild/protobuf"], "2.17.0", "runtime pinned to the generator's version");
  const mod = (await import(pkg.name)) as Record<string, unknown>;
  for (const name of ["Client", "Subscription", "ServerError", "TimeoutError", "ConnectionError", "ErrorCode", "CloseCode", "ClientFrameSchema", "RoomMessageSchema", "PayloadSchema", "ServerApi", "ServerApiError", "ApiPublishRequestSchema", "RoomInfoSchema", "newIdempotencyKey"]) {
    assert.ok(name in mod, `exports ${name}`);
  }
  assert.ok(!("testHooks" in mod), "test hooks are not exported");
});

test("package: declarations hide internals", () => {
  const dts = readFileSync(join(dist, "subscription.d.ts"), "utf8");
  for (const internal of ["applyJoin", "applySubscribed", "beginJoin", "joinPending", "resumePosition", "deliver("]) {
    assert.ok(!dts.includes(internal), `${internal} is @internal`);
  }
  assert.ok(existsSync(join(dist, "index.d.ts")));
  assert.ok(!readFileSync(join(dist, "index.d.ts"), "utf8").includes("internal.js"));
});
