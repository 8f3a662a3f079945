import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createMint } from "../../src/kernel/mint.ts";
import { SandboxStopped, SandboxTimeout } from "../../src/kernel/errors.ts";
import { loadToolModule, type SandboxLimits, type ToolModule } from "../../src/sandbox/index.ts";
import { createDispatcher, type Dispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink } from "../tools/memory-sink.ts";

/*
 * Runaway tool code: a sandboxed call has a time limit and fails alone at it
 * (SandboxTimeout); a sandbox that then stops responding (a `while (true)`)
 * is terminated, so it hangs nothing here, and the calls caught in it that
 * had asked the host for nothing run again in a fresh one. The sandbox has a
 * heap ceiling, the next call starts a fresh sandbox, and a tool that keeps
 * hanging it cannot make it restart without end.
 */

const TOOLS = `
import { z } from "zod";
import { defineTool } from "agentcap/sandbox";
const none = z.object({});
const quick = { input: none, needs: () => [] };
let calls = 0;
export const count = defineTool({ name: "count", description: "Counts its calls since the sandbox started.", ...quick }, () => ++calls);
export const spin = defineTool({ name: "spin", description: "Never returns.", ...quick }, () => { for (;;) {} });
export const spinLater = defineTool({ name: "spin_later", description: "Spins after an await.", ...quick }, async () => { await Promise.resolve(); for (;;) {} });
export const hang = defineTool({ name: "hang", description: "Never settles.", ...quick }, () => new Promise(() => undefined));
export const spinNeeds = defineTool({ name: "spin_needs", description: "Spins in needs.", input: none, needs: () => { for (;;) {} } }, () => 1);
export const flood = defineTool({ name: "flood", description: "Floods the microtask queue after returning.", ...quick }, () => { const again = () => Promise.resolve().then(again); again(); return "returned"; });
export const slow = defineTool({ name: "slow", description: "Asks the host, which answers after ms.", input: z.object({ ms: z.number() }), needs: () => [] }, async (i, cap, ctx) => ctx.endowments.clock.later(cap, i.ms));
export const waitThenSpin = defineTool({ name: "wait_then_spin", description: "Asks the host, then never returns.", input: z.object({ ms: z.number() }), needs: () => [] }, async (i, cap, ctx) => { await ctx.endowments.clock.later(cap, i.ms); for (;;) {} });
export const hog = defineTool({ name: "hog", description: "Allocates without end.", ...quick }, () => { const kept = []; for (;;) kept.push(new Array(1000000).fill(kept.length)); });
`;

const LIMITS: Partial<SandboxLimits> = { timeoutMs: 500, memoryMb: 64 };
const NAMES = ["count", "spin", "spin_later", "hang", "spin_needs", "flood", "slow", "wait_then_spin", "hog"];
/** An endowment whose one method answers after `ms`: a call waiting on it has asked the host for something. */
const clock = {
  later: async (_cap: unknown, ms: unknown) => {
    await new Promise((resolve) => setTimeout(resolve, Number(ms)));
    return "late";
  },
};
const cap = createMint({ issuer: "sandbox-tests", policy: () => ({ tools: NAMES }) }).issue({ id: "alice" });
const sink = memorySink();
let runaway: ToolModule;
let other: ToolModule;
let dispatcher: Dispatcher;

beforeAll(async () => {
  other = await loadToolModule({ source: TOOLS.replaceAll('name: "', 'name: "other_') }, { limits: LIMITS, endowments: { clock } });
}, 60_000);

afterAll(async () => {
  await other.close();
});

// A fresh sandbox for each test: each stops it a few times, and five stops within a minute would refuse the next start.
beforeEach(async () => {
  runaway = await loadToolModule({ source: TOOLS }, { limits: LIMITS, endowments: { clock } });
  dispatcher = createDispatcher({ tools: [...runaway.tools, ...other.tools.filter((t) => t.name === "other_count")], audit: sink });
}, 60_000);

afterEach(async () => {
  await runaway.close();
});

const otherCap = createMint({ issuer: "sandbox-tests", policy: () => ({ tools: ["other_count"] }) }).issue({ id: "bob" });

describe("a call past its time limit", () => {
  it("is stopped with SandboxTimeout, while this process and other modules keep serving", async () => {
    const spinning = dispatcher.call("spin", {}, cap).catch((e: unknown) => e);
    // Another module's sandbox answers while this one spins.
    await expect(dispatcher.call("other_count", {}, otherCap)).resolves.toBe(1);
    const error = await spinning;
    expect(error).toBeInstanceOf(SandboxTimeout);
    expect(error).toMatchObject({ code: "ERR_SANDBOX_TIMEOUT", timeoutMs: 500, message: "tool spin ran past its 500 ms time limit and was given up" });
    expect(sink.toolEvents().at(-1)).toMatchObject({ tool: "spin", outcome: { ok: false, errorCode: "ERR_SANDBOX_TIMEOUT" } });
  });

  it("stops the sandbox: the next call runs in a fresh one, module state and all", async () => {
    await expect(dispatcher.call("count", {}, cap)).resolves.toBe(1);
    await expect(dispatcher.call("count", {}, cap)).resolves.toBe(2);
    await expect(dispatcher.call("spin_later", {}, cap)).rejects.toThrow(SandboxTimeout);
    await expect(dispatcher.call("count", {}, cap)).resolves.toBe(1);
  });

  it("runs again, in a fresh sandbox, the calls caught behind a stuck one before they asked the host for anything", async () => {
    const spinning = dispatcher.call("spin", {}, cap).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const queued = [1, 2, 3, 4].map(() => dispatcher.call("count", {}, cap));
    expect(await spinning).toBeInstanceOf(SandboxTimeout);
    expect((await Promise.all(queued)).sort()).toEqual([1, 2, 3, 4]);
    expect(sink.toolEvents().filter((e) => e.tool === "count").slice(-4).map((e) => e.outcome.ok)).toEqual([true, true, true, true]);
  });

  it("holds a call made while a timed-out call's sandbox is checked, and runs it where it is safe: it is never sent into the stuck sandbox", async () => {
    const before = runaway.health();
    expect(await dispatcher.call("spin", {}, cap).catch((e: unknown) => e)).toBeInstanceOf(SandboxTimeout);
    await expect(dispatcher.call("count", {}, cap)).resolves.toBe(1);
    const after = runaway.health();
    expect(after.stopped.timeout - before.stopped.timeout).toBe(1);
    expect(after.rerun - before.rerun).toBe(0);
  });

  it("says which call ran past its limit when the sandbox stopped responding, and starts a fresh one for the next call", async () => {
    const spinning = dispatcher.call("spin", {}, cap).catch((e: unknown) => e);
    expect(await spinning).toMatchObject({ code: "ERR_SANDBOX_TIMEOUT", message: "tool spin ran past its 500 ms time limit and was given up" });
    await expect(dispatcher.call("count", {}, cap)).resolves.toBe(1);
    expect(runaway.health()).toMatchObject({ starts: 2, timeouts: 1, stopped: { timeout: 1, memory: 0, crash: 0 } });
  });

  it("leaves a sandbox that still responds running: a call that never settles fails alone, and the calls beside it complete", async () => {
    const before = runaway.health();
    await expect(dispatcher.call("count", {}, cap)).resolves.toBeGreaterThan(0);
    const hanging = dispatcher.call("hang", {}, cap).catch((e: unknown) => e);
    const beside = [dispatcher.call("slow", { ms: 100 }, cap), ...[1, 2, 3].map(() => dispatcher.call("count", {}, cap))];
    expect(await hanging).toMatchObject({ code: "ERR_SANDBOX_TIMEOUT", message: "tool hang ran past its 500 ms time limit and was given up" });
    const [late, ...counts] = await Promise.all(beside);
    expect(late).toBe("late");
    // The same sandbox, module state and all: counting went on.
    expect(Math.min(...(counts as number[]))).toBeGreaterThan(1);
    const after = runaway.health();
    expect(after.starts).toBe(before.starts);
    expect(after.stopped).toEqual(before.stopped);
    expect(after.timeouts).toBe(before.timeouts + 1);
  });

  it("covers needs too, and a handler that never settles", async () => {
    await expect(dispatcher.call("spin_needs", {}, cap)).rejects.toThrow(SandboxTimeout);
    await expect(dispatcher.call("hang", {}, cap)).rejects.toThrow(SandboxTimeout);
    await expect(dispatcher.call("count", {}, cap)).resolves.toBe(1);
  });

  it("catches a microtask flood left behind by a call that returned, at the next call", async () => {
    await expect(dispatcher.call("flood", {}, cap)).resolves.toBe("returned");
    // The flood allocates as it spins: on a fast machine it meets the memory ceiling before the time limit. Either stops it.
    const error = await dispatcher.call("count", {}, cap).catch((e: unknown) => e);
    expect(error instanceof SandboxTimeout || (error instanceof SandboxStopped && error.reason === "memory"), String(error)).toBe(true);
    await expect(dispatcher.call("count", {}, cap)).resolves.toBe(1);
  });

  it("stops a module whose loading never ends", async () => {
    const error = await loadToolModule({ source: `${TOOLS}\nfor (;;) {}` }, { limits: { loadTimeoutMs: 4_000 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxTimeout);
    expect((error as Error).message).toMatch(/loading tool module .* ran past its 4000 ms time limit/);
  });
});

describe("a call whose intent takes a while to be durable", () => {
  it("runs its handler once: the run its needs started is the one it claims, after the audit sink's own turns of the event loop", async () => {
    const inner = memorySink();
    // As a durable store does: the intent is committed in a later turn of the event loop, not a microtask.
    const slow = { ...inner, intend: async (...args: Parameters<typeof inner.intend>) => { await new Promise((resolve) => setTimeout(resolve, 20)); return inner.intend(...args); } };
    const d = createDispatcher({ tools: runaway.tools, audit: slow });
    const counts = [];
    for (let i = 0; i < 5; i++) counts.push(await d.call("count", {}, cap));
    expect(counts).toEqual([1, 2, 3, 4, 5]);
    // Refused or only planned, a call's started handler is dropped: it counts, but nothing is served or returned.
    await d.plan("count", {}, cap);
    await expect(d.call("count", {}, createMint({ issuer: "sandbox-tests", policy: () => ({ tools: ["spin"] }) }).issue({ id: "carol" }))).rejects.toThrow(/does not grant/);
    expect(runaway.health()).toMatchObject({ timeouts: 0, starts: 1 });
  });

  it("drops the started run at once when its intent cannot be recorded: nothing is left to reach its time limit", async () => {
    const inner = memorySink();
    const failing = { ...inner, intend: async () => { await new Promise((resolve) => setTimeout(resolve, 5)); throw new Error("audit store unreachable"); } };
    const d = createDispatcher({ tools: runaway.tools, audit: failing });
    await expect(d.call("count", {}, cap)).rejects.toThrow(/audit store unreachable/);
    // Past the 500 ms limit a run still held would have timed out.
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(runaway.health()).toMatchObject({ timeouts: 0 });
  });
});

describe("a call that asked the host before its sandbox got stuck", () => {
  it("is not run again: it fails with SandboxStopped (timeout) saying it may have acted, while a call that asked nothing runs again", async () => {
    // A 4 s limit, so the call that acted is still within its own when the stuck sandbox is stopped (1 s after the stuck call's limit).
    const logged: string[] = [];
    const m = await loadToolModule({ source: TOOLS }, { limits: { timeoutMs: 4_000, memoryMb: 64 }, endowments: { clock }, log: (line) => logged.push(line) });
    const at = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    try {
      const d = createDispatcher({ tools: m.tools, audit: sink });
      const started = Date.now();
      // Waits 3 s for the host, then spins: stuck from 3 s, its limit at 4 s, the sandbox stopped at about 5 s.
      const stuck = d.call("wait_then_spin", { ms: 3_000 }, cap).catch((e: unknown) => e);
      await at(2_000);
      // Asks the host at 2 s for an answer that comes long after: it has acted through the host.
      const acted = d.call("slow", { ms: 60_000 }, cap).catch((e: unknown) => e);
      await at(3_500 - (Date.now() - started));
      // Handed to the spinning sandbox at 3.5 s: it asks nothing before the stop.
      const caught = d.call("count", {}, cap);
      expect(await stuck).toBeInstanceOf(SandboxTimeout);
      const error = await acted;
      expect(error).toBeInstanceOf(SandboxStopped);
      expect(error).toMatchObject({ code: "ERR_SANDBOX_STOPPED", reason: "timeout" });
      expect((error as Error).message).toMatch(/this call may already have acted through the host, so it was not run again: retry it if that is safe$/);
      // Run again in a fresh sandbox: its count starts over.
      await expect(caught).resolves.toBe(1);
      expect(m.health()).toMatchObject({ starts: 2, timeouts: 1, stopped: { timeout: 1 }, rerun: 1 });
      expect(sink.toolEvents().filter((e) => e.tool === "slow").at(-1)).toMatchObject({ outcome: { ok: false, errorCode: "ERR_SANDBOX_STOPPED" } });
      // The operator is told: which call stuck it, what became of the others.
      expect(logged).toEqual([
        "the sandbox of tool-module.ts was stopped (timeout: a call of tool wait_then_spin in it ran past its time limit and the sandbox stopped responding); 1 call run again in a fresh one, 1 failed; 1 of 5 stops allowed within 60 s",
      ]);
    } finally {
      await m.close();
    }
  }, 20_000);
});

describe("the memory ceiling", () => {
  it("stops a sandbox that reaches it with SandboxStopped (memory), and the next call starts afresh", async () => {
    // A time limit long enough that the heap ceiling is what stops the call.
    const m = await loadToolModule({ source: TOOLS }, { limits: { timeoutMs: 60_000, memoryMb: 64 } });
    try {
      const d = createDispatcher({ tools: m.tools, audit: sink });
      const error = await d.call("hog", {}, cap).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SandboxStopped);
      expect(error).toMatchObject({ reason: "memory", message: "the sandbox of tool-module.ts reached its 64 MB memory ceiling and was stopped" });
      await expect(d.call("count", {}, cap)).resolves.toBe(1);
    } finally {
      await m.close();
    }
  });
});

describe("closing", () => {
  it("fails calls in flight and every later call with SandboxStopped (closed)", async () => {
    const m = await loadToolModule({ source: TOOLS }, { limits: LIMITS });
    const d = createDispatcher({ tools: m.tools, audit: memorySink() });
    const waiting = d.call("hang", {}, cap).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await m.close();
    expect(await waiting).toMatchObject({ code: "ERR_SANDBOX_STOPPED", reason: "closed" });
    await expect(d.call("count", {}, cap)).rejects.toMatchObject({ reason: "closed" });
  });
});

describe("restarts", () => {
  it("a tool that always hangs its sandbox cannot make it restart without end: after five losses within a minute, calls are refused (restarts) instead", async () => {
    const logged: string[] = [];
    const m = await loadToolModule({ source: TOOLS }, { limits: { timeoutMs: 200, memoryMb: 64 }, log: (line) => logged.push(line) });
    try {
      const d = createDispatcher({ tools: m.tools, audit: memorySink() });
      const outcomes: string[] = [];
      for (let i = 0; i < 8; i++) {
        const error = await d.call("spin", {}, cap).catch((e: unknown) => e);
        outcomes.push(error instanceof SandboxStopped ? `stopped: ${error.reason}` : (error as { code?: string }).code ?? String(error));
      }
      expect(outcomes).toEqual([...Array<string>(5).fill("ERR_SANDBOX_TIMEOUT"), ...Array<string>(3).fill("stopped: restarts")]);
      const refused = await d.call("count", {}, cap).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(SandboxStopped);
      expect((refused as Error).message).toMatch(/^the sandbox of tool-module.ts was stopped 5 times in the last 60 s .* so it is not started again for now; retry in \d+ s$/);
      expect(m.health()).toMatchObject({ starts: 5, timeouts: 5, stopped: { timeout: 5, memory: 0, crash: 0 }, refused: 4 });
      // One line per stop, then one when the refusals begin (not one per refused call).
      expect(logged).toHaveLength(6);
      logged.slice(0, 5).forEach((line, i) => {
        expect(line).toMatch(new RegExp(`^the sandbox of tool-module\\.ts was stopped \\(timeout: a call of tool spin in it ran past its time limit and the sandbox stopped responding\\); .*; ${String(i + 1)} of 5 stops allowed within 60 s$`));
      });
      expect(logged[5]).toMatch(/^the sandbox of tool-module\.ts was stopped 5 times in the last 60 s .* so it is not started again for now; calls are refused for the next \d+ s$/);
    } finally {
      await m.close();
    }
  });
});
