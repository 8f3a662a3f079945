import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonical } from "../../src/audit/canonical.ts";
import { canonicalJson } from "../../src/kernel/content-hash.ts";
import { snapshotPlainData } from "../../src/kernel/plain-data.ts";

describe("the audit log's canonical JSON", () => {
  it("is byte for byte the kernel's canonicalJson, on ordinary and null-prototype objects", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(canonical(value)).toBe(canonicalJson(value));
        expect(canonical(snapshotPlainData(value, "value"))).toBe(canonicalJson(value));
      }),
      { numRuns: 1000 },
    );
  });

  it("drops undefined members and writes undefined array items as null, as the kernel does", () => {
    const value = { b: undefined, a: [undefined, 1], "é\"": "\u2028\n" };
    expect(canonical(value)).toBe(canonicalJson(value));
    expect(canonical(value)).toBe(`{"a":[null,1],"é\\"":"\u2028\\n"}`);
  });
});
