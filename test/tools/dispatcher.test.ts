import { describe, expect, it } from "vitest";
import { z } from "zod";
import { assertAuthorized, check, narrow, restrict, revocable, type Capability } from "../../src/kernel/capability.ts";
import { BudgetExhausted, CapabilityDenied, ForeignFailure, InvalidInput, NotACapability, Revoked } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import type { Grant } from "../../src/kernel/grant.ts";
import { defineModuleTool, defineTool, subToolNeeds, type ToolContext } from "../../src/tools/define.ts";
import type { AuditSink } from "../../src/kernel/audit-sink.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { AuditFailure } from "../../src/kernel/errors.ts";
import { memorySink } from "./memory-sink.ts";

const FILES = new Map([
  ["/data/a.txt", "alpha"],
  ["/data/b.txt", "bravo"],
  ["/secret/key", "hunter2"],
]);

/** A stand-in for a confined resource: it authorizes every access on the capability it is given. */
function readFile(cap: Capability, path: string, tenant: string | null = null): string {
  assertAuthorized(cap, { action: "fs.read", path, ...(tenant === null ? {} : { tenant }) });
  return FILES.get(path) ?? "";
}

const held: Capability[] = [];

const readDoc = defineTool(
  {
    name: "read_doc",
    description: "Read one document by absolute path.",
    input: z.object({ path: z.string().startsWith("/") }),
    needs: ({ path }) => [{ action: "fs.read", path }],
  },
  (input, cap, ctx) => {
    held.push(cap);
    return { text: readFile(cap, input.path, ctx.tenant) };
  },
);

/** A tool that, if it could, would read more than it declared. */
const greedy = defineTool(
  {
    name: "greedy",
    description: "Declares one file, tries to read another.",
    input: z.object({ declared: z.string(), actual: z.string() }),
    needs: ({ declared }) => [{ action: "fs.read", path: declared }],
  },
  (input, cap) => readFile(cap, input.actual),
);

/** A parent tool that reads a file through the read_doc sub-tool. */
const summarize = defineTool(
  {
    name: "summarize",
    description: "Summarize one document.",
    input: z.object({ path: z.string().startsWith("/") }),
    needs: ({ path }, ctx) => subToolNeeds(readDoc, { path }, ctx),
  },
  async (input, cap, ctx) => {
    const { text } = await ctx.call(readDoc, { path: input.path }, cap);
    return `${text.slice(0, 3)}…`;
  },
);

const failing = defineTool(
  { name: "failing", description: "Always fails.", input: z.object({}), needs: () => [] },
  () => {
    throw new Error("disk on fire");
  },
);

const GRANT: Grant = {
  tools: ["read_doc", "greedy", "summarize", "failing"],
  fs: [{ path: "/data", ops: ["read"] }],
};

function setup(grant: Grant = GRANT) {
  const mint = createMint({ issuer: "test", policy: () => grant });
  const alice = mint.issue({ id: "alice" }, { requestId: "req-alice" });
  const sink = memorySink();
  const dispatcher = createDispatcher({ tools: [readDoc, greedy, summarize, failing], audit: sink });
  return { mint, alice, sink, dispatcher };
}

describe("dispatcher", () => {
  it("runs an allowed call with a capability narrowed to exactly its needs, and records one event", async () => {
    const { alice, sink, dispatcher } = setup();
    held.length = 0;
    await expect(dispatcher.call(readDoc, { path: "/data/a.txt" }, alice)).resolves.toEqual({ text: "alpha" });
    const handlerCap = held[0] as Capability;
    // One link below the caller's, narrowed to the call's needs and revocable (revoked when the call returns).
    expect(handlerCap.id).not.toBe(alice.id);
    expect(handlerCap.parentId).toBe(alice.id);
    expect(handlerCap.lineage.at(-1)?.revocable).toBe(true);
    expect(handlerCap.lineage.map((l) => l.grant)).toContainEqual({ fs: [{ path: "/data/a.txt", ops: ["read"], subtree: false }] });
    // The caller could read b.txt; the handler's capability could not, even while the call ran.
    expect(check(alice, { action: "fs.read", path: "/data/b.txt" }).allowed).toBe(true);
    const events = sink.toolEvents();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      kind: "tool",
      tool: "read_doc",
      request: { action: "tool.call", tool: "read_doc" },
      decision: { allowed: true },
      outcome: { ok: true, resultBytes: Buffer.byteLength(JSON.stringify({ text: "alpha" })) },
      subject: { capabilityId: alice.id, mint: { principal: "alice", requestId: "req-alice" } },
    });
  });

  it("revokes the handler's capability when the call returns", async () => {
    const { alice, dispatcher } = setup();
    held.length = 0;
    await dispatcher.call(readDoc, { path: "/data/a.txt" }, alice);
    const kept = held[0] as Capability;
    expect(() => {
      readFile(kept, "/data/a.txt");
    }).toThrow(Revoked);
    expect(check(kept, { action: "fs.read", path: "/data/a.txt" })).toMatchObject({ code: "ERR_REVOKED", reason: expect.stringContaining("the call to tool read_doc has returned") as string });
  });

  it("stops a handler that reaches beyond its declared needs, even inside the caller's authority", async () => {
    const { alice, sink, dispatcher } = setup();
    await expect(dispatcher.call(greedy, { declared: "/data/a.txt", actual: "/data/b.txt" }, alice)).rejects.toThrow(CapabilityDenied);
    expect(sink.toolEvents()).toHaveLength(1);
    expect(sink.toolEvents()[0]?.outcome).toMatchObject({ ok: false, errorCode: "ERR_CAPABILITY_DENIED" });
  });

  it("denies a tool the capability does not reach, whatever its input, and never runs it", async () => {
    const { mint, sink, dispatcher } = setup();
    const bob = narrow(mint.issue({ id: "bob" }), { tools: ["summarize"], fs: GRANT.fs ?? [] });
    held.length = 0;
    const err = await dispatcher.call("read_doc", { nonsense: true }, bob).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapabilityDenied);
    expect((err as Error).message).toContain('does not grant tool "read_doc"');
    expect(held).toHaveLength(0);
    expect(sink.toolEvents()).toEqual([expect.objectContaining({ decision: expect.objectContaining({ allowed: false, rule: "tools" }) as unknown })]);
  });

  it("fails a denied need before the handler runs, recording the need that was denied", async () => {
    const { alice, sink, dispatcher } = setup();
    held.length = 0;
    const err = await dispatcher.call(readDoc, { path: "/secret/key" }, alice).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapabilityDenied);
    expect(held).toHaveLength(0);
    const [event] = sink.toolEvents();
    expect(event?.request).toEqual({ action: "fs.read", path: "/secret/key" });
    expect(event?.decision).toMatchObject({ allowed: false, link: 0, rule: "fs" });
  });

  it("rejects invalid input naming the field, records it, and charges nothing", async () => {
    const { mint, sink, dispatcher } = setup();
    // Exactly enough for one call: its tool.call and the handler's one read.
    const once = restrict(mint.issue({ id: "carol" }), { maxUses: 2 });
    const err = await dispatcher.call("read_doc", { path: "relative.txt" }, once).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInput);
    expect((err as Error).message).toMatch(/^invalid input for tool read_doc: path: /);
    expect(sink.toolEvents()[0]?.outcome).toMatchObject({ ok: false, errorCode: "ERR_INVALID_INPUT" });
    await expect(dispatcher.call(readDoc, { path: "/data/a.txt" }, once)).resolves.toEqual({ text: "alpha" });
    await expect(dispatcher.call(readDoc, { path: "/data/a.txt" }, once)).rejects.toThrow(BudgetExhausted);
    expect(sink.toolEvents()).toHaveLength(3);
  });

  it("refuses an unknown tool name the capability happens to grant, with one event", async () => {
    const { mint, sink, dispatcher } = setup({ tools: ["no_such_tool"] });
    const cap = mint.issue({ id: "dave" });
    await expect(dispatcher.call("no_such_tool", {}, cap)).rejects.toThrow(/no tool named no_such_tool is registered/);
    expect(sink.toolEvents()).toHaveLength(1);
  });

  it("records a handler's failure and rethrows it as a ForeignFailure holding the original", async () => {
    const { alice, sink, dispatcher } = setup();
    const thrown = await dispatcher.call(failing, {}, alice).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(ForeignFailure);
    expect(thrown).toMatchObject({ code: "ERR_FOREIGN_FAILURE", message: "disk on fire" });
    expect((thrown as Error).cause).toBeInstanceOf(Error);
    expect(sink.toolEvents()[0]?.outcome).toEqual({ ok: false, errorCode: "ERR_FOREIGN_FAILURE", message: "disk on fire" });
  });

  it("narrows a sub-tool again and records each invocation once", async () => {
    const { alice, sink, dispatcher } = setup();
    held.length = 0;
    await expect(dispatcher.call(summarize, { path: "/data/b.txt" }, alice)).resolves.toBe("bra…");
    expect(sink.toolEvents().map((e) => e.tool)).toEqual(["read_doc", "summarize"]);
    const [inner, outer] = sink.toolEvents();
    // The sub-tool was called with the parent's narrowed capability, not the caller's.
    expect(inner?.subject.capabilityId).not.toBe(alice.id);
    expect(inner?.subject.lineage.length).toBeGreaterThan(outer?.subject.lineage.length ?? Infinity);
    expect(inner?.subject.mint.principal).toBe("alice");
    // A link per call: the parent's, then the sub-tool's below it.
    expect((held[0] as Capability).depth).toBe(alice.depth + 2);
  });

  it("records the intent before the handler runs, and never runs it when the intent cannot be recorded", async () => {
    const { alice, sink, dispatcher } = setup();
    const before = held.length;
    sink.failWith(new Error("disk full"));
    const err = await dispatcher.call(readDoc, { path: "/data/a.txt" }, alice).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuditFailure);
    expect((err as AuditFailure).code).toBe("ERR_AUDIT_FAILURE");
    expect((err as Error).message).toBe("the audit sink could not record the intent of the call to tool read_doc, so it was not run: disk full");
    expect(held.length).toBe(before);
    await expect(dispatcher.call(readDoc, { path: "/secret/key" }, alice)).rejects.toThrow(/its error \(ERR_CAPABILITY_DENIED\) is withheld/);
    sink.failWith(null);
    await expect(dispatcher.call(readDoc, { path: "/data/a.txt" }, alice)).resolves.toEqual({ text: "alpha" });
    expect(held.length).toBe(before + 1);
    expect(sink.intents.at(-1)).toMatchObject({ kind: "tool", tool: "read_doc", decision: { allowed: true } });
  });

  it("withholds the result when only the outcome cannot be recorded", async () => {
    const { alice, sink, dispatcher } = setup();
    sink.failWith(new Error("disk full"), "complete");
    await expect(dispatcher.call(readDoc, { path: "/data/a.txt" }, alice)).rejects.toThrow(
      /^the call to tool read_doc ran and its intent was recorded \(event .*\), but its outcome could not be recorded, so its result is withheld: disk full$/,
    );
  });

  it("does not run a handler whose capability was revoked while its intent was recorded", async () => {
    const { alice, sink } = setup();
    const lease = revocable(alice);
    const d = createDispatcher({
      tools: [readDoc],
      audit: {
        intend: async (intent) => {
          await sink.intend(intent);
          lease.revoke("revoked meanwhile");
        },
        complete: (c) => sink.complete(c),
        write: (e) => sink.write(e),
      },
    });
    const before = held.length;
    await expect(d.call(readDoc, { path: "/data/a.txt" }, lease.capability)).rejects.toThrow(Revoked);
    expect(held.length).toBe(before);
    expect(sink.events.at(-1)).toMatchObject({ outcome: { ok: false, errorCode: "ERR_REVOKED" } });
  });

  it("refuses anything that is not a kernel capability, before anything runs", async () => {
    const { alice, sink, dispatcher } = setup();
    const forged = JSON.parse(JSON.stringify({ id: alice.id })) as Capability;
    await expect(dispatcher.call(readDoc, { path: "/data/a.txt" }, forged)).rejects.toThrow(NotACapability);
    const copy: unknown = Object.assign({}, alice);
    await expect(dispatcher.call(readDoc, { path: "/data/a.txt" }, copy as Capability)).rejects.toThrow(NotACapability);
    expect(sink.events).toHaveLength(0);
  });

  it("lets at most one of two concurrent calls spend a single-use capability", async () => {
    const { alice, dispatcher } = setup();
    const once = restrict(alice, { maxUses: 2 }); // one tool.call and one read
    const results = await Promise.allSettled([
      dispatcher.call(readDoc, { path: "/data/a.txt" }, once),
      dispatcher.call(readDoc, { path: "/data/a.txt" }, once),
    ]);
    // Both calls may be admitted while their intents are recorded; then the read, the second use, is left to one of them at most.
    expect(results.filter((r) => r.status === "fulfilled").length).toBeLessThanOrEqual(1);
    const single = restrict(alice, { maxUses: 1 });
    const noNeeds = await Promise.allSettled([dispatcher.call(readDoc, { path: "/data/a.txt" }, single), dispatcher.call(readDoc, { path: "/data/a.txt" }, single)]);
    expect(noNeeds.filter((r) => r.status === "fulfilled").length).toBeLessThanOrEqual(1);
  });

  it("gives the handler a signal that fires when the caller's capability is revoked mid-call", async () => {
    const { alice } = setup({ ...GRANT, tools: ["slow"] });
    const lease = revocable(alice);
    let release = (): void => undefined;
    const waiting = new Promise<void>((r) => (release = r));
    const slow = defineTool(
      { name: "slow", description: "Waits, then reads.", input: z.object({}), needs: () => [{ action: "fs.read", path: "/data/a.txt" }] },
      async (_input, cap, ctx) => {
        release();
        await new Promise((resolve) => {
          ctx.signal.addEventListener("abort", resolve, { once: true });
        });
        return readFile(cap, "/data/a.txt");
      },
    );
    const d = createDispatcher({ tools: [slow], audit: memorySink() });
    const running = d.call(slow, {}, narrow(lease.capability, { tools: ["slow"], fs: GRANT.fs ?? [] }));
    await waiting;
    lease.revoke("task cancelled");
    await expect(running).rejects.toThrow(/task cancelled/);
  });

  it("records how a module tool's code runs in every one of its events, denied ones included; in-process tools carry no such field", async () => {
    const optedOut = defineModuleTool(
      { name: "opted_out", description: "Loaded with trusted: true.", input: z.object({ path: z.string() }), needs: (i) => [{ action: "fs.read", path: String(i.path) }] },
      (input) => input,
      "trusted",
    );
    const mint = createMint({ issuer: "test", policy: () => ({ tools: ["opted_out", "read_doc"], fs: [{ path: "/data", ops: ["read"] }] }) });
    const sink = memorySink();
    const d = createDispatcher({ tools: [optedOut, readDoc], audit: sink });
    const cap = mint.issue({ id: "frank" });
    await d.call("opted_out", { path: "/data/a.txt" }, cap);
    await expect(d.call("opted_out", { path: "/secret/key" }, cap)).rejects.toThrow(CapabilityDenied);
    await expect(d.call("opted_out", { path: "/data/a.txt" }, narrow(cap, { tools: ["read_doc"] }))).rejects.toThrow(CapabilityDenied);
    await d.call(readDoc, { path: "/data/a.txt" }, cap);
    expect(sink.toolEvents().map((e) => e.toolCode)).toEqual(["trusted", "trusted", "trusted", undefined]);
    expect(Object.hasOwn(sink.toolEvents()[3] ?? {}, "toolCode")).toBe(false);
  });

  it("uses the capability's only minted tenant by default, and stamps it on every need", async () => {
    const mint = createMint({ issuer: "t", policy: () => ({ tenants: ["acme"], ...GRANT }) });
    const sink = memorySink();
    const d = createDispatcher({ tools: [readDoc], audit: sink });
    const acme = mint.issue({ id: "erin", tenants: ["acme"] });
    held.length = 0;
    await d.call(readDoc, { path: "/data/a.txt" }, acme);
    expect(sink.toolEvents()[0]?.request).toEqual({ action: "tool.call", tool: "read_doc", tenant: "acme" });
    expect((held[0] as Capability).lineage.at(-2)?.grant).toMatchObject({ tenants: ["acme"] });
    await expect(d.call(readDoc, { path: "/data/a.txt" }, acme, { tenant: "globex" })).rejects.toThrow(/confined to tenants acme, not globex/);
    await expect(d.call(readDoc, { path: "/data/a.txt" }, acme, { tenant: "" })).rejects.toThrow(InvalidInput);
  });
});

describe("a call that waits for nothing", () => {
  /** A sink that records synchronously, noting each step. */
  const syncSink = (steps: string[]): AuditSink => ({
    intend: (intent) => {
      steps.push(`intend ${String(intent.tool)}`);
    },
    complete: () => {
      steps.push("complete");
    },
    write: (event) => {
      steps.push(`write ${event.decision.allowed ? "allowed" : "denied"}`);
    },
  });

  it("is recorded, run and completed before call() returns, when its needs, handler and sink all answer synchronously", async () => {
    const { alice } = setup();
    const steps: string[] = [];
    const d = createDispatcher({ tools: [readDoc], audit: syncSink(steps) });
    const answer = d.call(readDoc, { path: "/data/a.txt" }, alice);
    expect(steps).toEqual(["intend read_doc", "complete"]);
    await expect(answer).resolves.toEqual({ text: "alpha" });
  });

  it("still waits for needs, a handler and a sink that answer with thenables, recording the intent before the handler runs", async () => {
    const { alice } = setup({ ...GRANT, tools: ["later"] });
    const steps: string[] = [];
    /** A thenable that is not a Promise, settling on a later turn of the event loop. */
    const later = <T>(value: T, step: string) => ({
      then: (resolve: (v: T) => void) => {
        setTimeout(() => {
          steps.push(step);
          resolve(value);
        }, 1);
      },
    });
    const tool = defineTool(
      { name: "later", description: "Answers later.", input: z.object({}), needs: () => later([{ action: "fs.read", path: "/data/a.txt" }] as const, "needs") as never },
      (_input, cap) => later(readFile(cap, "/data/a.txt"), "handler") as never,
    );
    const sink: AuditSink = {
      intend: () => later(undefined, "intent recorded") as never,
      complete: () => later(undefined, "outcome recorded") as never,
      write: () => undefined,
    };
    const d = createDispatcher({ tools: [tool], audit: sink });
    await expect(d.call(tool, {}, alice)).resolves.toBe("alpha");
    expect(steps).toEqual(["needs", "intent recorded", "handler", "outcome recorded"]);
  });

  it("shares one frozen audit subject among the events of calls under one capability", async () => {
    const { alice, sink, dispatcher } = setup();
    await dispatcher.call(readDoc, { path: "/data/a.txt" }, alice);
    await expect(dispatcher.call(readDoc, { path: "/secret/key" }, alice)).rejects.toThrow(CapabilityDenied);
    const [first, second] = sink.toolEvents();
    expect(first?.subject).toBe(second?.subject);
    expect(Object.isFrozen(first?.subject)).toBe(true);
    expect(first?.subject).toMatchObject({ capabilityId: alice.id, capabilityHash: alice.hash, lineage: alice.lineage, sessionId: null, taskId: null });
  });

  it("gives the handler a frozen context with its tenant, call, dispatcher and signal, and no way to end the signal's watch", async () => {
    const { alice } = setup({ ...GRANT, tools: ["look"] });
    let seen: ToolContext | undefined;
    const look = defineTool({ name: "look", description: "Looks at its context.", input: z.object({}), needs: () => [] }, (_input, _cap, ctx) => {
      seen = ctx;
      return ctx.signal.aborted;
    });
    const d = createDispatcher({ tools: [look], audit: memorySink() });
    await expect(d.call(look, {}, alice)).resolves.toBe(false);
    const ctx = seen as ToolContext;
    expect(Object.keys(ctx).sort()).toEqual(["call", "dispatcher", "tenant"]);
    expect(Object.isFrozen(ctx)).toBe(true);
    expect("dispose" in ctx).toBe(false);
    expect(ctx.call).toBe(d.call);
    // The call has returned: its capability is revoked, and the signal says so.
    expect(ctx.signal.aborted).toBe(true);
  });
});
