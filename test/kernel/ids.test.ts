import { describe, expect, it } from "vitest";
import { portableTimeOrderedId, timeOrderedId } from "../../src/kernel/ids.js";
import { createMint, narrow } from "../../src/index.js";

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The Unix millisecond timestamp a version 7 UUID starts with. */
const millisOf = (id: string) => parseInt(id.replace(/-/g, "").slice(0, 12), 16);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each([
  ["timeOrderedId", timeOrderedId],
  ["portableTimeOrderedId (Node without randomUUIDv7)", portableTimeOrderedId],
])("%s", (_, make) => {
  it("makes version 7 UUIDs stamped with the current time", () => {
    const before = Date.now();
    const id = make();
    const after = Date.now();
    expect(id).toMatch(V7);
    expect(millisOf(id)).toBeGreaterThanOrEqual(before);
    expect(millisOf(id)).toBeLessThanOrEqual(after);
  });

  it("makes a different id each time", () => {
    const ids = new Set(Array.from({ length: 10_000 }, make));
    expect(ids.size).toBe(10_000);
  });

  it("sorts an id made in a later millisecond after every earlier one", async () => {
    const earlier = Array.from({ length: 100 }, make);
    await sleep(3);
    const later = make();
    for (const id of earlier) expect(id < later).toBe(true);
  });
});

describe("ids of capabilities", () => {
  it("are time-ordered UUIDs, each its own", () => {
    const root = createMint({ issuer: "ids", policy: () => ({ tools: ["search"] }) }).issue({ id: "alice" });
    const child = narrow(root, { tools: ["search"] });
    expect(root.id).toMatch(V7);
    expect(child.id).toMatch(V7);
    expect(child.id).not.toBe(root.id);
  });
});
