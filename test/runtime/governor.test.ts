import { describe, expect, it } from "vitest";
import { z } from "zod";
import { assertAuthorized, type Capability } from "../../src/kernel/capability.ts";
import { createManualClock } from "../../src/kernel/clock.ts";
import { BudgetExhausted, CapabilityDenied, Expired, InvalidInput } from "../../src/kernel/errors.ts";
import type { Grant } from "../../src/kernel/grant.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { defineTool, subToolNeeds, type AnyTool, type Tool } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { agentSubtask } from "../../src/runtime/agent-task.ts";
import { check, SessionClosed, TaskCancelled, TaskTimedOut } from "../../src/index.ts";
import { createGovernor, type CriticalCheck, type GovernorOptions, type SubtaskSpec } from "../../src/runtime/index.ts";
import { scriptedModel } from "../../src/testing/scripted-model.ts";
import { openSession } from "../../src/runtime/session.ts";
import { memorySink } from "../tools/memory-sink.ts";

function setup(options: { critical?: GovernorOptions["critical"]; policy?: () => Grant | null; extraTools?: (deleteNote: Tool<{ path: string }, boolean>) => AnyTool[] } = {}) {
  const notes = new Map([
    ["/notes/a", "alpha"],
    ["/notes/b", "bravo"],
  ]);
  const readNote = defineTool(
    { name: "read_note", description: "Read a note.", input: z.object({ path: z.string() }), needs: ({ path }) => [{ action: "fs.read", path }] },
    (input, cap) => {
      assertAuthorized(cap, { action: "fs.read", path: input.path });
      return notes.get(input.path) ?? null;
    },
  );
  const deleteNote = defineTool(
    { name: "delete_note", description: "Delete a note.", input: z.object({ path: z.string() }), needs: ({ path }) => [{ action: "fs.delete", path }] },
    (input, cap) => {
      assertAuthorized(cap, { action: "fs.delete", path: input.path });
      return notes.delete(input.path);
    },
  );
  const clock = createManualClock(1_000_000);
  const grant: Grant = { tools: ["read_note", "delete_note"], fs: [{ path: "/notes", ops: ["read", "delete"] }] };
  const mint = createMint({ issuer: "app", clock, policy: options.policy ?? (() => grant) });
  const sink = memorySink();
  const dispatcher = createDispatcher({ tools: [readNote, deleteNote, ...(options.extraTools?.(deleteNote) ?? [])], audit: sink });
  const session = openSession({ mint, principal: { id: "alice" }, id: "s-1", requestId: "login" });
  const governor = createGovernor({ session, dispatcher, ...(options.critical === undefined ? {} : { critical: options.critical }) });
  return { notes, readNote, deleteNote, clock, mint, sink, dispatcher, session, governor, grant };
}

const READ_ONLY: Grant = { tools: ["read_note"], fs: [{ path: "/notes", ops: ["read"] }] };

describe("Governor: task lifetimes", () => {
  it("gives a subtask an attenuated capability labelled with session and task, and revokes it on completion", async () => {
    const { governor, dispatcher, sink, session } = setup();
    let kept: Capability | null = null;
    const task = governor.spawn({
      name: "read-a",
      grant: READ_ONLY,
      timeoutMs: 60_000,
      run: async (ctx) => {
        kept = ctx.capability;
        await expect(dispatcher.call("delete_note", { path: "/notes/a" }, ctx.capability)).rejects.toThrow(CapabilityDenied);
        return dispatcher.call("read_note", { path: "/notes/a" }, ctx.capability);
      },
    });
    expect(task.status).toBe("running");
    await expect(task.result).resolves.toBe("alpha");
    expect(task.status).toBe("completed");
    expect(sink.toolEvents().map((e) => e.subject.taskId)).toEqual([task.id, task.id]);
    expect(sink.toolEvents()[0]?.subject.sessionId).toBe("s-1");
    expect(check((kept as unknown as Capability), { action: "fs.read", path: "/notes/a" })).toMatchObject({
      code: "ERR_REVOKED",
      reason: expect.stringContaining(`task ${task.id} completed`) as string,
    });
    // The session itself is untouched.
    expect(check(session.capability, { action: "fs.read", path: "/notes/a" }).allowed).toBe(true);
  });

  it("revokes on failure and passes the error on", async () => {
    const { governor } = setup();
    const task = governor.spawn({ name: "boom", grant: READ_ONLY, timeoutMs: 60_000, run: () => Promise.reject(new Error("exploded")) });
    await expect(task.result).rejects.toThrow("exploded");
    expect(task.status).toBe("failed");
  });

  it("cancels: revokes the capability, aborts the signal and rejects with TaskCancelled", async () => {
    const { governor } = setup();
    let signal: AbortSignal | null = null;
    const task = governor.spawn({
      name: "long",
      grant: READ_ONLY,
      timeoutMs: 60_000,
      run: (ctx) => {
        signal = ctx.signal;
        return new Promise(() => undefined);
      },
    });
    await Promise.resolve();
    task.cancel("user pressed stop");
    await expect(task.result).rejects.toThrow(TaskCancelled);
    expect((signal as unknown as AbortSignal).aborted).toBe(true);
    expect(task.status).toBe("cancelled");
    task.cancel("again");
    expect(task.status).toBe("cancelled");
  });

  it("expires a subtask's capability at its deadline on the mint's clock, even before the timer fires", async () => {
    const { governor, dispatcher, clock } = setup();
    const task = governor.spawn({
      name: "slow",
      grant: READ_ONLY,
      timeoutMs: 5_000,
      run: async (ctx) => {
        clock.advance(5_000);
        return dispatcher.call("read_note", { path: "/notes/a" }, ctx.capability);
      },
    });
    await expect(task.result).rejects.toThrow(Expired);
  });

  it("runs a decomposed task and reports how each subtask ended", async () => {
    const { governor, dispatcher } = setup();
    const outcomes = await governor.run([
      { name: "ok", grant: READ_ONLY, timeoutMs: 60_000, run: (ctx) => dispatcher.call("read_note", { path: "/notes/b" }, ctx.capability) },
      { name: "denied", grant: READ_ONLY, timeoutMs: 60_000, run: (ctx) => dispatcher.call("delete_note", { path: "/notes/b" }, ctx.capability) },
      { name: "stuck", grant: READ_ONLY, timeoutMs: 10, run: () => new Promise(() => undefined) },
    ]);
    expect(outcomes.map((o) => [o.name, o.status])).toEqual([
      ["ok", "completed"],
      ["denied", "failed"],
      ["stuck", "timed-out"],
    ]);
    expect(outcomes[0]).toMatchObject({ value: "bravo" });
    expect(outcomes[2]).toMatchObject({ error: expect.any(TaskTimedOut) as unknown });
  });

  it("runs an agent subtask whose Executor sees only the subtask's tools", async () => {
    const { governor } = setup();
    const model = scriptedModel([{ calls: [{ tool: "read_note", input: { path: "/notes/a" } }] }, ({ results }) => ({ text: String(results[0]?.value) })]);
    const result = await governor.spawn(agentSubtask({ name: "agent", grant: READ_ONLY, timeoutMs: 60_000, model, prompt: "read a" })).result;
    expect(result.text).toBe("alpha");
    expect(model.doGenerateCalls[0]?.tools?.map((t) => t.name)).toEqual(["read_note"]);
  });

  it.each([
    ["a bad name", { name: "has space" }, /subtask name must be/],
    ["no grant", { grant: null }, /grant must be a Grant/],
    ["a zero timeout", { timeoutMs: 0 }, /timeoutMs must be a whole number/],
    ["no run function", { run: "x" }, /run must be a function/],
  ])("refuses a subtask with %s", (_what, patch, message) => {
    const { governor } = setup();
    const spec = { name: "t", grant: READ_ONLY, timeoutMs: 1000, run: () => Promise.resolve(1), ...patch } as unknown as SubtaskSpec<number>;
    expect(() => governor.spawn(spec)).toThrow(message);
  });

  it("starts nothing once the session is closed, and closing it kills running tasks", async () => {
    const { governor, session, dispatcher } = setup();
    let release = (): void => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const task = governor.spawn({
      name: "t",
      grant: READ_ONLY,
      timeoutMs: 60_000,
      run: async (ctx) => {
        await gate;
        return dispatcher.call("read_note", { path: "/notes/a" }, ctx.capability);
      },
    });
    session.close("logged out");
    release();
    await expect(task.result).rejects.toThrow(/logged out/);
    expect(() => governor.spawn({ name: "t2", grant: READ_ONLY, timeoutMs: 1000, run: () => Promise.resolve(1) })).toThrow(SessionClosed);
    await expect(governor.run([])).rejects.toThrow(InvalidInput);
  });
});

describe("Governor: time-bounded escalation", () => {
  it("grants exactly one call of one tool with one input, for N seconds", async () => {
    const { governor, dispatcher, clock, notes } = setup();
    const cap = await governor.escalate({ tool: "delete_note", input: { path: "/notes/a" }, seconds: 60 });
    await expect(dispatcher.call("delete_note", { path: "/notes/b" }, cap)).rejects.toThrow(CapabilityDenied);
    await expect(dispatcher.call("read_note", { path: "/notes/a" }, cap)).rejects.toThrow(CapabilityDenied);
    await expect(dispatcher.call("delete_note", { path: "/notes/a" }, cap)).resolves.toBe(true);
    expect(notes.has("/notes/a")).toBe(false);
    await expect(dispatcher.call("delete_note", { path: "/notes/a" }, cap)).rejects.toThrow(BudgetExhausted);

    const later = await governor.escalate({ tool: "delete_note", input: { path: "/notes/b" }, seconds: 60 });
    clock.advance(60_000);
    await expect(dispatcher.call("delete_note", { path: "/notes/b" }, later)).rejects.toThrow(Expired);
    expect(notes.has("/notes/b")).toBe(true);
  });

  it("never exceeds the session, and dies with the task that asked for it", async () => {
    const { governor, dispatcher } = setup();
    const outside = await governor.escalate({ tool: "read_note", input: { path: "/etc/passwd" }, seconds: 60 });
    await expect(dispatcher.call("read_note", { path: "/etc/passwd" }, outside)).rejects.toThrow(CapabilityDenied);

    let escalated: Capability | null = null;
    await governor.spawn({
      name: "t",
      grant: READ_ONLY,
      timeoutMs: 60_000,
      run: async (ctx) => {
        escalated = await ctx.escalate("delete_note", { path: "/notes/a" }, 30);
      },
    }).result;
    await expect(dispatcher.call("delete_note", { path: "/notes/a" }, escalated as unknown as Capability)).rejects.toThrow(
      /the task that asked for the escalation has ended/,
    );
  });

  it.each([0, -1, Number.NaN, 10 ** 9])("refuses %s seconds", async (seconds) => {
    const { governor } = setup();
    await expect(governor.escalate({ tool: "read_note", input: { path: "/notes/a" }, seconds })).rejects.toThrow(/seconds must be a number above 0/);
  });

  it("refuses unknown tools and bad input", async () => {
    const { governor } = setup();
    await expect(governor.escalate({ tool: "nope", input: {}, seconds: 5 })).rejects.toThrow(/no tool named nope/);
    await expect(governor.escalate({ tool: "read_note", input: {}, seconds: 5 })).rejects.toThrow(/invalid input for tool read_note: path/);
  });
});

describe("Governor: critical operations need a fresh re-mint after a policy check", () => {
  const critical = (policy: (c: CriticalCheck) => boolean) => ({ tools: ["delete_note"], policy });

  it("keeps critical tools out of the task's own capability, and runs an approved call under a fresh mint", async () => {
    const checks: CriticalCheck[] = [];
    const { governor, dispatcher, sink, notes } = setup({ critical: critical((c) => (checks.push(c), true)) });
    const model = scriptedModel([{ calls: [{ tool: "delete_note", input: { path: "/notes/a" } }] }, { text: "deleted" }]);
    const task = governor.spawn(agentSubtask({ name: "cleanup", grant: { tools: ["read_note", "delete_note"], fs: [{ path: "/notes", ops: ["read", "delete"] }] }, timeoutMs: 60_000, model, prompt: "delete a" }));
    const result = await task.result;
    expect(result.calls).toMatchObject([{ tool: "delete_note", verdict: "allowed" }]);
    expect(notes.has("/notes/a")).toBe(false);
    // The model was shown the critical tool, although the task's capability does not reach it.
    expect(model.doGenerateCalls[0]?.tools?.map((t) => t.name)).toEqual(["read_note", "delete_note"]);
    expect(checks).toMatchObject([{ tool: "delete_note", taskId: task.id, sessionId: "s-1", principal: { principal: "alice" }, input: { path: "/notes/a" } }]);
    const [event] = sink.toolEvents();
    expect(event?.subject.mint.principal).toBe("alice");
    expect(event?.subject.mint.requestId).toMatch(new RegExp(`^${task.id}:delete_note:`));
    expect(event?.subject.taskId).toBe(task.id);

    const direct = governor.spawn({ name: "direct", grant: { tools: ["delete_note"], fs: [{ path: "/notes", ops: ["delete"] }] }, timeoutMs: 60_000, run: (ctx) => dispatcher.call("delete_note", { path: "/notes/b" }, ctx.capability) });
    await expect(direct.result).rejects.toThrow(/does not grant tool "delete_note"/);
  });

  it("refuses when the policy refuses, and records the denial", async () => {
    const { governor, sink, notes } = setup({ critical: critical(() => false) });
    const task = governor.spawn({
      name: "cleanup",
      grant: { tools: ["delete_note"], fs: [{ path: "/notes", ops: ["delete"] }] },
      timeoutMs: 60_000,
      run: (ctx) => (ctx.criticalTools[0] as { call: (i: unknown) => Promise<unknown> }).call({ path: "/notes/a" }),
    });
    await expect(task.result).rejects.toThrow(/critical tool delete_note needs a fresh capability and the critical-operation policy refused it/);
    expect(notes.has("/notes/a")).toBe(true);
    expect(sink.toolEvents()).toMatchObject([{ tool: "delete_note", decision: { allowed: false, rule: "tools" } }]);
  });

  it("refuses when the mint's current policy no longer grants the principal anything", async () => {
    let current: Grant | null = { tools: ["read_note", "delete_note"], fs: [{ path: "/notes", ops: ["read", "delete"] }] };
    const { governor } = setup({ critical: critical(() => true), policy: () => current });
    const task = governor.spawn({
      name: "cleanup",
      grant: { tools: ["delete_note"], fs: [{ path: "/notes", ops: ["delete"] }] },
      timeoutMs: 60_000,
      run: (ctx) => {
        current = null;
        return (ctx.criticalTools[0] as { call: (i: unknown) => Promise<unknown> }).call({ path: "/notes/a" });
      },
    });
    await expect(task.result).rejects.toThrow(/the mint refused a fresh capability/);
  });

  it("refuses to escalate a critical tool", async () => {
    const { governor } = setup({ critical: critical(() => true) });
    await expect(governor.escalate({ tool: "delete_note", input: { path: "/notes/a" }, seconds: 5 })).rejects.toThrow(/is critical/);
  });

  it("refuses to escalate a tool that reaches a critical tool through its needs, at any depth, without asking the policy", async () => {
    const checks: CriticalCheck[] = [];
    // tidy_note calls delete_note as a sub-tool; sweep_notes calls tidy_note.
    const viaSubTool = (deleteNote: Tool<{ path: string }, boolean>): AnyTool[] => {
      const tidyNote = defineTool(
        { name: "tidy_note", description: "Tidy a note.", input: z.object({ path: z.string() }), needs: ({ path }, ctx) => subToolNeeds(deleteNote, { path }, ctx) },
        (input, cap, ctx) => ctx.call(deleteNote, input, cap),
      );
      const sweepNotes = defineTool(
        { name: "sweep_notes", description: "Sweep notes.", input: z.object({ path: z.string() }), needs: ({ path }, ctx) => subToolNeeds(tidyNote, { path }, ctx) },
        (input, cap, ctx) => ctx.call(tidyNote, input, cap),
      );
      return [tidyNote, sweepNotes];
    };
    const grant: Grant = { tools: ["read_note", "delete_note", "tidy_note", "sweep_notes"], fs: [{ path: "/notes", ops: ["read", "delete"] }] };
    const { governor, dispatcher, notes } = setup({ critical: critical((c) => (checks.push(c), true)), policy: () => grant, extraTools: viaSubTool });
    for (const tool of ["tidy_note", "sweep_notes"]) {
      const escalation = governor.escalate({ tool, input: { path: "/notes/a" }, seconds: 60 });
      await expect(escalation).rejects.toThrow(InvalidInput);
      await expect(escalation).rejects.toThrow(/reaches critical tool delete_note through its needs/);
    }
    // A task's own capability, which names tidy_note, cannot reach delete_note through it either.
    const task = governor.spawn({
      name: "tidy",
      grant: { tools: ["tidy_note", "delete_note"], fs: [{ path: "/notes", ops: ["delete"] }] },
      timeoutMs: 60_000,
      run: (ctx) => dispatcher.call("tidy_note", { path: "/notes/a" }, ctx.capability),
    });
    await expect(task.result).rejects.toThrow(/does not grant tool "delete_note"/);
    expect(checks).toEqual([]);
    expect(notes.has("/notes/a")).toBe(true);
  });

  it.each([
    ["tools that are not names", { tools: [1], policy: (): boolean => true }, /critical.tools must be an array/],
    ["no policy", { tools: [] }, /critical.policy must be a function/],
    ["bad seconds", { tools: [], policy: (): boolean => true, seconds: 0 }, /seconds must be a number above 0/],
  ])("refuses critical options with %s", (_what, c, message) => {
    expect(() => setup({ critical: c as unknown as GovernorOptions["critical"] })).toThrow(message);
  });
});
