import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { SpanStatusCode, trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createApprovals, createMint, narrow, revocable, SPAN_ATTRIBUTES as A, type Capability, type Grant } from "../../src/index.ts";
import { createFileSystem, type FileSystem } from "../../src/resources/fs/file-system.ts";
import { createDispatcher, defineTool, subToolNeeds, type Dispatcher } from "../../src/tools/index.ts";
import { exportedText, isChildOf, recordSpans, type RecordedSpans } from "../support/tracing.ts";
import { memorySink, type MemorySink } from "./memory-sink.ts";

/*
 * The spans a tool call makes when the application registers a tracer
 * provider: one per call, a child per resource access made under it, with
 * who acted, under which capability, what was decided and which link
 * denied, and nothing of what was asked for. No context manager is
 * registered here, so every parent below comes from the capability chain.
 */

let dir: string;
let files: FileSystem;
let sink: MemorySink;
let dispatcher: Dispatcher;
let recorded: RecordedSpans;

const onBehalf = (tenant: string | null) => (tenant === null ? {} : { tenant });

const readNote = defineTool(
  { name: "read_note", description: "Reads one note.", input: z.object({ path: z.string() }), needs: ({ path: p }) => [{ action: "fs.read", path: p }] },
  async ({ path: p }, cap, ctx) => (await files.read(cap, p, onBehalf(ctx.tenant))).toString("utf8"),
);

/** Declares one file and reads another: its own capability refuses the second. */
const peek = defineTool(
  {
    name: "peek",
    description: "Reads a file it did not declare.",
    input: z.object({ declared: z.string(), actual: z.string() }),
    needs: ({ declared }) => [{ action: "fs.read", path: declared }],
  },
  async ({ actual }, cap, ctx) => (await files.read(cap, actual, onBehalf(ctx.tenant))).toString("utf8"),
);

const outline = defineTool(
  { name: "outline", description: "Outlines a note through read_note.", input: z.object({ path: z.string() }), needs: (i, ctx) => subToolNeeds(readNote, i, ctx) },
  async (i, cap, ctx) => `# ${await ctx.call(readNote, i, cap)}`,
);

const explode = defineTool(
  { name: "explode", description: "Fails.", input: z.object({ word: z.string() }), needs: () => [] },
  ({ word }) => {
    throw new Error(`the handler saw ${word}`);
  },
);

const note = (name: string) => path.join(dir, name);
const attrs = (s: ReadableSpan) => s.attributes;

function alice(grant: Grant = { tools: ["read_note", "peek", "outline", "explode"], fs: [{ path: dir, ops: ["read"] }] }): Capability {
  return createMint({ issuer: "tracing-tests", policy: () => grant }).issue({ id: "alice", tenants: ["acme"] });
}

beforeAll(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), "agentcap-tracing-")));
  writeFileSync(note("plan.txt"), "the plan\n");
  writeFileSync(note("other.txt"), "other\n");
  sink = memorySink();
  files = createFileSystem({ baseDir: dir, audit: sink });
  dispatcher = createDispatcher({ tools: [readNote, peek, outline, explode], audit: sink });
  recorded = recordSpans();
});

afterEach(() => {
  recorded.reset();
});

afterAll(async () => {
  await recorded.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a tool call's span", () => {
  it("an allowed call: who, under which capability, allowed, with a child span for its file read", async () => {
    const cap = alice();
    expect(await dispatcher.call("read_note", { path: note("plan.txt") }, cap)).toBe("the plan\n");

    const call = recorded.one("execute_tool read_note");
    expect(attrs(call)).toMatchObject({
      [A.tool]: "read_note",
      [A.genAiOperation]: "execute_tool",
      [A.genAiTool]: "read_note",
      [A.capabilityId]: cap.id,
      [A.lineageDepth]: 0,
      [A.principal]: "alice",
      [A.tenant]: "acme",
      [A.decision]: "allow",
    });
    expect(attrs(call)[A.denyingLinkId]).toBeUndefined();
    expect(call.status.code).toBe(SpanStatusCode.UNSET);
    const intent = sink.intents.find((i) => i.kind === "tool" && i.tool === "read_note");
    expect(attrs(call)[A.auditEventId]).toBe(intent?.id);
    expect(call.parentSpanContext).toBeUndefined();

    const read = recorded.one("fs.read");
    expect(isChildOf(read, call)).toBe(true);
    expect(attrs(read)).toMatchObject({
      [A.resourceKind]: "fs",
      [A.resourceOperation]: "fs.read",
      [A.tool]: "read_note",
      [A.principal]: "alice",
      [A.tenant]: "acme",
      [A.decision]: "allow",
    });
    // The handler's own capability: narrowed to the call's needs, below the caller's.
    expect(attrs(read)[A.capabilityId]).not.toBe(cap.id);
    expect(attrs(read)[A.lineageDepth]).toBeGreaterThan(0);
    const access = sink.intents.find((i) => i.kind === "resource");
    expect(attrs(read)[A.auditEventId]).toBe(access?.id);
    expect(read.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("a call its capability denies: the denying link, its rule and code, an error status, and no access span", async () => {
    const root = alice();
    const narrowed = narrow(root, { tools: ["peek"] });
    await expect(dispatcher.call("read_note", { path: note("plan.txt") }, narrowed)).rejects.toMatchObject({ code: "ERR_CAPABILITY_DENIED" });

    expect(recorded.spans().map((s) => s.name)).toEqual(["execute_tool read_note"]);
    const call = recorded.one("execute_tool read_note");
    expect(attrs(call)).toMatchObject({
      [A.capabilityId]: narrowed.id,
      [A.lineageDepth]: 1,
      [A.principal]: "alice",
      [A.decision]: "deny",
      [A.decisionCode]: "ERR_CAPABILITY_DENIED",
      [A.decisionRule]: "tools",
      [A.decisionAction]: "tool.call",
      [A.denyingLinkId]: narrowed.id,
      [A.denyingLinkIndex]: 1,
      [A.errorType]: "ERR_CAPABILITY_DENIED",
    });
    expect(call.status).toEqual({ code: SpanStatusCode.ERROR, message: "ERR_CAPABILITY_DENIED" });
    const event = sink.toolEvents().at(-1);
    expect(attrs(call)[A.auditEventId]).toBe(event?.id);
  });

  it("a call denied for one of its needs names the root link that denied and the action it refused", async () => {
    const cap = alice({ tools: ["read_note"], fs: [{ path: note("other.txt"), ops: ["read"] }] });
    await expect(dispatcher.call("read_note", { path: note("plan.txt") }, cap)).rejects.toMatchObject({ code: "ERR_CAPABILITY_DENIED" });
    expect(recorded.spans().map((s) => s.name)).toEqual(["execute_tool read_note"]);
    const call = recorded.one("execute_tool read_note");
    expect(attrs(call)[A.resourceOperation]).toBeUndefined();
    expect(attrs(call)).toMatchObject({
      [A.decision]: "deny",
      [A.decisionRule]: "fs",
      [A.decisionAction]: "fs.read",
      [A.denyingLinkId]: cap.id,
      [A.denyingLinkIndex]: 0,
    });
  });

  it("an access its handler's capability refuses: a denied child span under the call, whose span fails too", async () => {
    const cap = alice();
    await expect(dispatcher.call("peek", { declared: note("plan.txt"), actual: note("other.txt") }, cap)).rejects.toMatchObject({ code: "ERR_CAPABILITY_DENIED" });
    const call = recorded.one("execute_tool peek");
    const read = recorded.one("fs.read");
    expect(isChildOf(read, call)).toBe(true);
    // The call itself was allowed; what its handler then tried was not, by the link the dispatcher narrowed it to.
    expect(attrs(call)).toMatchObject({ [A.decision]: "allow", [A.errorType]: "ERR_CAPABILITY_DENIED" });
    expect(call.status.code).toBe(SpanStatusCode.ERROR);
    expect(attrs(read)).toMatchObject({ [A.decision]: "deny", [A.decisionCode]: "ERR_CAPABILITY_DENIED", [A.decisionRule]: "fs", [A.tool]: "peek" });
    expect(attrs(read)[A.denyingLinkIndex]).toBeGreaterThan(0);
    expect(attrs(read)[A.denyingLinkId]).not.toBe(cap.id);
    expect(read.status).toEqual({ code: SpanStatusCode.ERROR, message: "ERR_CAPABILITY_DENIED" });
  });

  it("a sub-call is a child of the call that made it, and its file read a child of the sub-call", async () => {
    await dispatcher.call("outline", { path: note("plan.txt") }, alice());
    const parent = recorded.one("execute_tool outline");
    const child = recorded.one("execute_tool read_note");
    const read = recorded.one("fs.read");
    expect(isChildOf(child, parent)).toBe(true);
    expect(isChildOf(read, child)).toBe(true);
    expect(attrs(child)[A.lineageDepth]).toBeGreaterThan(0);
    expect(attrs(read)[A.tool]).toBe("read_note");
  });

  it("a handler's failure is the code of the error it reaches the caller as, never its message", async () => {
    await expect(dispatcher.call("explode", { word: "swordfish" }, alice())).rejects.toMatchObject({ code: "ERR_FOREIGN_FAILURE" });
    const call = recorded.one("execute_tool explode");
    expect(call.status).toEqual({ code: SpanStatusCode.ERROR, message: "ERR_FOREIGN_FAILURE" });
    expect(attrs(call)).toMatchObject({ [A.decision]: "allow", [A.errorType]: "ERR_FOREIGN_FAILURE" });
    expect(call.events).toEqual([]);
    expect(exportedText(recorded.spans())).not.toContain("swordfish");
  });

  it("bad input is an error span with the allowed decision it was checked after, as in the audit event", async () => {
    await expect(dispatcher.call("read_note", { path: 42 }, alice())).rejects.toMatchObject({ code: "ERR_INVALID_INPUT" });
    const call = recorded.one("execute_tool read_note");
    expect(attrs(call)).toMatchObject({ [A.decision]: "allow", [A.errorType]: "ERR_INVALID_INPUT" });
    expect(call.status.code).toBe(SpanStatusCode.ERROR);
  });

  it("a revoked capability: denied, with the revoked link as the denying link", async () => {
    const forwarder = revocable(alice());
    forwarder.revoke("done");
    await expect(dispatcher.call("read_note", { path: note("plan.txt") }, forwarder.capability)).rejects.toMatchObject({ code: "ERR_REVOKED" });
    expect(attrs(recorded.one("execute_tool read_note"))).toMatchObject({
      [A.decision]: "deny",
      [A.decisionCode]: "ERR_REVOKED",
      [A.denyingLinkId]: forwarder.capability.id,
    });
  });

  it("something that is not a capability is an error span with no capability attributes", async () => {
    const forged: unknown = { id: "forged" };
    await expect(dispatcher.call("read_note", { path: note("plan.txt") }, forged as Capability)).rejects.toMatchObject({ code: "ERR_NOT_A_CAPABILITY" });
    const call = recorded.one("execute_tool read_note");
    expect(attrs(call)[A.capabilityId]).toBeUndefined();
    expect(attrs(call)[A.decision]).toBeUndefined();
    expect(attrs(call)[A.errorType]).toBe("ERR_NOT_A_CAPABILITY");
  });

  it("never carries the call's arguments, paths or file contents", async () => {
    const cap = alice();
    await dispatcher.call("outline", { path: note("plan.txt") }, cap);
    await dispatcher.call("peek", { declared: note("plan.txt"), actual: note("other.txt") }, cap).catch(() => undefined);
    const text = exportedText(recorded.spans());
    for (const leaked of [dir, "plan.txt", "other.txt", "the plan"]) expect(text).not.toContain(leaked);
  });
});

describe("a call that waits for approval", () => {
  it("is a span with decision approval_required, and the approved call runs as its child", async () => {
    const approvalSink = memorySink();
    const approvals = createApprovals({ audit: approvalSink });
    const gated = createDispatcher({ tools: [readNote], audit: sink, approvals });
    const mint = createMint({
      issuer: "tracing-tests",
      policy: (p) =>
        p.id === "alice" ? { tools: ["read_note"], fs: [{ path: dir, ops: ["read"] }], approval: [{ tools: ["read_note"], approvers: ["bob"] }] } : { tools: [] },
    });
    const [cap, bob] = [mint.issue({ id: "alice" }), mint.issue({ id: "bob" })];
    const result = gated.call("read_note", { path: note("plan.txt") }, cap);
    let pending: readonly { readonly id: string }[] = [];
    while (pending.length === 0) {
      await new Promise((r) => setTimeout(r, 1));
      pending = await approvals.list();
    }
    await approvals.approve((pending[0] as { id: string }).id, bob);
    expect(await result).toBe("the plan\n");
    const spans = recorded.spans().filter((s) => s.name === "execute_tool read_note");
    expect(spans).toHaveLength(2);
    const [waiting, approved] = [spans.find((s) => attrs(s)[A.decision] === "approval_required"), spans.find((s) => attrs(s)[A.decision] === "allow")];
    expect(waiting).toBeDefined();
    expect(approved).toBeDefined();
    expect(isChildOf(approved as ReadableSpan, waiting as ReadableSpan)).toBe(true);
    expect(isChildOf(recorded.one("fs.read"), approved as ReadableSpan)).toBe(true);
  });
});

describe("with an application span and a context manager", () => {
  it("the call is a child of the application's active span, and spans the handler makes are the call's children", async () => {
    await recorded.stop();
    recorded = recordSpans({ contextManager: true });
    const tracer = trace.getTracer("application");
    const inner = defineTool({ name: "inner", description: "Makes a span of its own.", input: z.object({}), needs: () => [] }, () => {
      tracer.startActiveSpan("application work", (s) => {
        s.end();
      });
      return null;
    });
    const local = createDispatcher({ tools: [inner, readNote], audit: sink });
    const cap = alice({ tools: ["inner", "read_note"], fs: [{ path: dir, ops: ["read"] }] });
    await tracer.startActiveSpan("handle request", async (request) => {
      await local.call("inner", {}, cap);
      await local.call("read_note", { path: note("plan.txt") }, cap);
      request.end();
    });
    const request = recorded.one("handle request");
    const call = recorded.one("execute_tool inner");
    expect(isChildOf(call, request)).toBe(true);
    expect(isChildOf(recorded.one("application work"), call)).toBe(true);
    const read = recorded.one("execute_tool read_note");
    expect(isChildOf(read, request)).toBe(true);
    expect(isChildOf(recorded.one("fs.read"), read)).toBe(true);
  });
});

describe("without a tracer provider", () => {
  it("calls run as before, and a provider registered later is used from the next call on", async () => {
    await recorded.stop();
    expect(await dispatcher.call("read_note", { path: note("plan.txt") }, alice())).toBe("the plan\n");
    recorded = recordSpans();
    expect(recorded.spans()).toEqual([]);
    await dispatcher.call("read_note", { path: note("plan.txt") }, alice());
    expect(recorded.spans().map((s) => s.name)).toEqual(["fs.read", "execute_tool read_note"]);
  });
});
