import { describe, expect, it } from "vitest";
import { LimitExceeded } from "../../src/kernel/errors.ts";
import { callLimiter } from "../../src/mcp/call-limit.ts";

/** A call that finishes when told to, recording when it started. */
function gate(started: number[], n: number) {
  let open!: () => void;
  const done = new Promise<void>((resolve) => (open = resolve));
  return { run: async () => { started.push(n); await done; return n; }, open };
}

describe("callLimiter", () => {
  it("runs at most maxConcurrent calls at once and the rest in order of arrival", async () => {
    const limit = callLimiter(2, 10);
    const started: number[] = [];
    const gates = [0, 1, 2, 3, 4].map((n) => gate(started, n));
    const results = gates.map((g) => limit(g.run));
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    gates[1]?.open();
    await results[1];
    await Promise.resolve();
    expect(started).toEqual([0, 1, 2]);
    gates[0]?.open();
    gates[2]?.open();
    await Promise.all([results[0], results[2]]);
    await Promise.resolve();
    expect(started).toEqual([0, 1, 2, 3, 4]);
    gates[3]?.open();
    gates[4]?.open();
    expect(await Promise.all(results)).toEqual([0, 1, 2, 3, 4]);
  });

  it("refuses a call beyond maxQueued waiting ones with LimitExceeded, and those admitted still finish", async () => {
    const limit = callLimiter(1, 2);
    const started: number[] = [];
    const gates = [0, 1, 2].map((n) => gate(started, n));
    const admitted = gates.map((g) => limit(g.run));
    const refused = limit(() => Promise.resolve(99));
    await expect(refused).rejects.toThrow(LimitExceeded);
    await expect(refused).rejects.toMatchObject({ code: "ERR_LIMIT_EXCEEDED", limit: "maxQueuedCalls" });
    for (const g of gates) g.open();
    expect(await Promise.all(admitted)).toEqual([0, 1, 2]);
    // Room again: the next call runs.
    expect(await limit(() => Promise.resolve(7))).toBe(7);
  });

  it("frees a turn when a call fails", async () => {
    const limit = callLimiter(1, 0);
    await expect(limit(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await limit(() => Promise.resolve("next"))).toBe("next");
  });
});
