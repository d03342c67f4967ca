/**
 * Golden vectors (tests/vectors): the five steps of
 * proto/switchboard/testing/v1/vectors.proto for every vector in the manifest.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { equals, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";
import { VectorSetSchema } from "../src/gen/switchboard/testing/v1/vectors_pb.js";
import { allTypes } from "./registry.js";
import { repoRoot } from "./helpers.js";

const dir = process.env["SWITCHBOARD_VECTORS_DIR"] ?? join(repoRoot(), "tests", "vectors");
const manifestPath = join(dir, "manifest.json");

function readJson(path: string): JsonValue {
  return JSON.parse(readFileSync(path, "utf8")) as JsonValue;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

if (!existsSync(manifestPath)) {
  test("vectors: manifest exists", () => {
    assert.fail(`missing ${manifestPath}`);
  });
} else {
  const manifest = fromJson(VectorSetSchema, readJson(manifestPath), { registry: allTypes });

  test("vectors: manifest is not empty", () => {
    assert.ok(manifest.vectors.length > 0, "the manifest lists no vectors");
  });

  for (const vector of manifest.vectors) {
    test(`vector ${vector.name} (${vector.messageType})`, () => {
      const schema = allTypes.getMessage(vector.messageType);
      assert.ok(schema, `unknown message type ${vector.messageType}`);
      const bin = new Uint8Array(readFileSync(join(dir, `${vector.name}.bin`)));
      const json = readJson(join(dir, `${vector.name}.json`));
      const canonicalPath = join(dir, `${vector.name}.canonical.bin`);
      assert.equal(
        existsSync(canonicalPath),
        vector.hasUnknownFields,
        `${vector.name}.canonical.bin must exist exactly when has_unknown_fields is set`,
      );
      const canonical = vector.hasUnknownFields ? new Uint8Array(readFileSync(canonicalPath)) : bin;

      // 1. Decode the binary.
      const decoded = fromBinary(schema, bin);
      if (vector.hasUnknownFields) {
        assert.ok((decoded.$unknown?.length ?? 0) > 0 || hex(toBinary(schema, decoded, { writeUnknownFields: false })) !== hex(bin),
          "the vector says it has unknown fields, but none were found");
      }

      // 2. Print it as proto3 JSON: equal to <name>.json as a JSON value.
      assert.deepStrictEqual(toJson(schema, decoded, { registry: allTypes }), json, "binary -> JSON");

      // 3. Parse the JSON: equal to the decoded message (known fields).
      const parsed = fromJson(schema, json, { registry: allTypes });
      assert.ok(equals(schema, parsed, decoded, { registry: allTypes }), "JSON -> message differs from binary -> message");

      // 4. Re-encode the decoded message: this runtime keeps unknown fields, so
      //    the exact original bytes.
      assert.equal(hex(toBinary(schema, decoded)), hex(bin), "re-encoding the decoded message");

      // 5. Encode the message parsed from JSON: the canonical bytes.
      assert.equal(hex(toBinary(schema, parsed)), hex(canonical), "encoding the message parsed from JSON");
    });
  }
}
