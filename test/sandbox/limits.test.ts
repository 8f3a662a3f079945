import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMint } from "../../src/kernel/mint.ts";
import { SandboxStopped, SandboxTimeout } from "../../src/kernel/errors.ts";
import { loadToolModule, type SandboxLimits, type ToolModule } from "../../src/sandbox/index.ts";
import { createDispatcher, type Dispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink } from "../tools/memory-sink.ts";

/*
 * Runaway tool code: a sandboxed call has a time limit and is stopped at it
 * (the worker running it is terminated, so a `while (true)` hangs nothing
 * here), the sandbox has a heap ceiling, and the next call starts a fresh
 * sandbox.
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
export const hog = defineTool({ name: "hog", description: "Allocates without end.", ...quick }, () => { const kept = []; for (;;) kept.push(new Array(1000000).fill(kept.length)); });
`;

const LIMITS: Partial<SandboxLimits> = { timeoutMs: 500, memoryMb: 64 };
const NAMES = ["count", "spin", "spin_later", "hang", "spin_needs", "flood", "hog"];
const cap = createMint({ issuer: "sandbox-tests", policy: () => ({ tools: NAMES }) }).issue({ id: "alice" });
const sink = memorySink();
let runaway: ToolModule;
let other: ToolModule;
let dispatcher: Dispatcher;

beforeAll(async () => {
  runaway = await loadToolModule({ source: TOOLS }, { limits: LIMITS });
  other = await loadToolModule({ source: TOOLS.replaceAll('name: "', 'name: "other_') }, { limits: LIMITS });
  dispatcher = createDispatcher({ tools: [...runaway.tools, ...other.tools.filter((t) => t.name === "other_count")], audit: sink });
});

afterAll(async () => {
  await runaway.close();
  await other.close();
});

const otherCap = createMint({ issuer: "sandbox-tests", policy: () => ({ tools: ["other_count"] }) }).issue({ id: "bob" });

describe("a call past its time limit", () => {
  it("is stopped with SandboxTimeout, while this process and other modules keep serving", async () => {
    const spinning = dispatcher.call("spin", {}, cap).catch((e: unknown) => e);
    // Another module's sandbox answers while this one spins.
    await expect(dispatcher.call("other_count", {}, otherCap)).resolves.toBe(1);
    const error = await spinning;
    expect(error).toBeInstanceOf(SandboxTimeout);
    expect(error).toMatchObject({ code: "ERR_SANDBOX_TIMEOUT", timeoutMs: 500, message: "tool spin ran past its 500 ms time limit; its sandbox was stopped" });
    expect(sink.toolEvents().at(-1)).toMatchObject({ tool: "spin", outcome: { ok: false, errorCode: "ERR_SANDBOX_TIMEOUT" } });
  });

  it("stops the sandbox: the next call runs in a fresh one, module state and all", async () => {
    await expect(dispatcher.call("count", {}, cap)).resolves.toBe(1);
    await expect(dispatcher.call("count", {}, cap)).resolves.toBe(2);
    await expect(dispatcher.call("spin_later", {}, cap)).rejects.toThrow(SandboxTimeout);
    await expect(dispatcher.call("count", {}, cap)).resolves.toBe(1);
  });

  it("fails the other calls in the same sandbox with SandboxStopped, saying why", async () => {
    const spinning = dispatcher.call("spin", {}, cap).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const queued = dispatcher.call("count", {}, cap).catch((e: unknown) => e);
    expect(await spinning).toBeInstanceOf(SandboxTimeout);
    expect(await queued).toMatchObject({
      code: "ERR_SANDBOX_STOPPED",
      reason: "timeout",
      message: "the sandbox of tool-module.ts was stopped because another call in it ran past its time limit",
    });
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
