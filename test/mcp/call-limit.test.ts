import { describe, expect, it } from "vitest";
import { LimitExceeded } from "../../src/kernel/errors.ts";
import { callLimiter, chainLimiters } from "../../src/mcp/call-limit.ts";

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

  it("behind a session's own limiter, runs at most maxCallsPerSession of one session, leaving the gateway's other turns to other sessions", async () => {
    const gateway = callLimiter(4, 100);
    const sessionA = chainLimiters(callLimiter(2, 100, "this session"), gateway);
    const sessionB = chainLimiters(callLimiter(2, 100, "this session"), gateway);
    const started: number[] = [];
    const a = [0, 1, 2, 3, 4, 5].map((n) => gate(started, n));
    const b = [10, 11].map((n) => gate(started, n));
    const results = [...a.map((g) => sessionA(g.run)), ...b.map((g) => sessionB(g.run))];
    await new Promise((resolve) => setTimeout(resolve, 0));
    // Session A asked for six at once and got two; B, asking later, got its two of the gateway's four.
    expect(started).toEqual([0, 1, 10, 11]);
    a[0]?.open();
    await results[0];
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(started).toEqual([0, 1, 10, 11, 2]);
    for (const g of [...a, ...b]) g.open();
    expect(await Promise.all(results)).toEqual([0, 1, 2, 3, 4, 5, 10, 11]);
  });

  it("says whose calls are queued when a session's queue is full", async () => {
    const session = callLimiter(1, 0, "this session");
    const started: number[] = [];
    const g = gate(started, 0);
    const running = session(g.run);
    await expect(session(() => Promise.resolve(1))).rejects.toThrow(/^this session is running 1 calls and 0 more are waiting/);
    g.open();
    expect(await running).toBe(0);
  });

  it("frees a turn when a call fails", async () => {
    const limit = callLimiter(1, 0);
    await expect(limit(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await limit(() => Promise.resolve("next"))).toBe("next");
  });
});
