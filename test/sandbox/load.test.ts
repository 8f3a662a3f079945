import fc from "fast-check";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { openAuditStore } from "../../src/audit/open.ts";
import { narrow } from "../../src/kernel/capability.ts";
import { AgentcapError, CapabilityDenied, ForeignFailure, InvalidInput, NotACapability, Revoked, SandboxViolation } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { loadToolModule, type ToolModule } from "../../src/sandbox/index.ts";
import { defineTool } from "../../src/tools/define.ts";
import { createDispatcher, type Dispatcher } from "../../src/tools/dispatcher.ts";
import { makeWorld, NOTES_MODULE, NOTE_TOOLS, type World } from "./world.ts";

let world: World;
let sandboxed: ToolModule;
let trusted: ToolModule;
let dispatcher: Dispatcher;

/** A tool the application defines in-process, called by the sandboxed summarize tool. */
const upper = defineTool(
  { name: "upper", description: "Upper-case a string.", input: z.object({ s: z.string() }), needs: () => [] },
  ({ s }) => s.toUpperCase(),
);

beforeAll(async () => {
  world = makeWorld();
  sandboxed = await loadToolModule(NOTES_MODULE, { endowments: { files: world.files, greeting: "Hello" } });
  trusted = await loadToolModule(NOTES_MODULE, { trusted: true, endowments: { files: world.files, greeting: "Hello" } });
  dispatcher = createDispatcher({ tools: [...sandboxed.tools, upper], audit: world.sink });
});

afterAll(async () => {
  await sandboxed.close();
  world.cleanup();
});

describe("a sandboxed tool module", () => {
  it("defines the module's tools, shown to a model with the same input schemas as when trusted", () => {
    expect(sandboxed.tools.map((t) => t.name).sort()).toEqual([...NOTE_TOOLS].sort());
    const schemas = (m: ToolModule) => Object.fromEntries(m.tools.map((t) => [t.name, t.inputSchema]));
    expect(schemas(sandboxed)).toEqual(schemas(trusted));
    expect(dispatcher.catalog(narrow(world.alice, { tools: ["read_note"] })).map((e) => e.name)).toEqual(["read_note"]);
  });

  it("runs a tool that uses its capability, and records a tool event saying it ran sandboxed next to the file access", async () => {
    world.sink.events.length = 0;
    await expect(dispatcher.call("read_note", { name: "a.txt" }, world.alice)).resolves.toBe("alpha");
    const [access, call] = world.sink.events;
    expect(call).toMatchObject({ kind: "tool", tool: "read_note", toolCode: "sandboxed", decision: { allowed: true }, outcome: { ok: true } });
    expect(access).toMatchObject({ kind: "resource", request: { action: "fs.read", path: world.at("a.txt") }, decision: { allowed: true } });
    // The access was made with the handler's capability: narrowed to the one need, below alice's.
    expect(access?.subject.lineage[0]?.id).toBe(world.alice.id);
    expect(access?.subject.capabilityId).not.toBe(world.alice.id);
  });

  it("writes through its capability, within its needs", async () => {
    await expect(dispatcher.call("write_note", { name: "new.txt", content: "fresh" }, world.alice)).resolves.toEqual({ bytes: 5 });
    expect(fs.readFileSync(world.at("new.txt"), "utf8")).toBe("fresh");
  });

  it("refuses a read beyond the declared needs with the kernel's own CapabilityDenied, even inside the caller's authority", async () => {
    const error = await dispatcher.call("greedy", { declared: "a.txt", actual: "b.txt" }, world.alice).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CapabilityDenied);
    expect(world.sink.toolEvents().at(-1)?.outcome).toMatchObject({ ok: false, errorCode: "ERR_CAPABILITY_DENIED" });
  });

  it("denies a need outside the caller's grant before the handler's request is served", async () => {
    world.sink.events.length = 0;
    await expect(dispatcher.call("read_note", { name: "secret" }, world.alice)).rejects.toThrow(CapabilityDenied);
    expect(world.sink.events.filter((e) => e.kind === "resource")).toHaveLength(0);
  });

  it("validates input on both sides: the schema shown to models here, the tool's own refinements inside the sandbox", async () => {
    await expect(dispatcher.call("read_note", { name: "../b.txt" }, world.alice)).rejects.toThrow(InvalidInput);
    const refined = await dispatcher.call("greet", { who: "mallory" }, world.alice).catch((e: unknown) => e);
    expect(refined).toBeInstanceOf(InvalidInput);
    expect((refined as Error).message).toBe("invalid input for tool greet: who: mallory is not greeted");
    await expect(dispatcher.call("greet", { who: "bob" }, world.alice)).resolves.toBe("Hello, bob");
  });

  it("reports a tool's own error as a ForeignFailure with its name and message, never the object or its stack", async () => {
    const error = await dispatcher.call("failing", {}, world.alice).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForeignFailure);
    expect(error).toMatchObject({ code: "ERR_FOREIGN_FAILURE", message: "tool failing failed: RangeError: disk on fire", cause: { name: "RangeError", message: "disk on fire" } });
    expect((error as Error & { cause: Error }).cause.stack).not.toContain("notes.ts");
  });

  it("calls another tool of the dispatcher with its capability, narrowed again for the sub-tool", async () => {
    world.sink.events.length = 0;
    await expect(dispatcher.call("summarize", { name: "b.txt" }, world.alice)).resolves.toBe("bra…");
    expect(world.sink.toolEvents().map((e) => e.tool)).toEqual(["read_note", "summarize"]);
  });

  it("narrows its capability inside the sandbox, and the narrower one cannot read the other file", async () => {
    await expect(dispatcher.call("narrowing", { first: "a.txt", second: "a.txt" }, world.alice)).resolves.toBe("alphaalpha");
    await expect(dispatcher.call("narrowing", { first: "a.txt", second: "b.txt" }, world.alice)).rejects.toThrow(CapabilityDenied);
  });

  it("holds nothing through a capability kept past its call: the next use meets Revoked", async () => {
    await expect(dispatcher.call("keeper", { name: "a.txt", reuse: false }, world.alice)).resolves.toBe("alpha");
    const error = await dispatcher.call("keeper", { name: "a.txt", reuse: true }, world.alice).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Revoked);
    expect((error as Error).message).toContain("the call to tool keeper has returned");
  });

  it("serves concurrent calls, each with its own capability", async () => {
    const names = Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? "a.txt" : "b.txt"));
    const results = await Promise.all(names.map((name) => dispatcher.call("read_note", { name }, world.alice)));
    expect(results).toEqual(names.map((n) => (n === "a.txt" ? "alpha" : "bravo")));
  });

  it("plans a call without running it: the handler's speculative start is abandoned and serves nothing", async () => {
    world.sink.events.length = 0;
    const plan = await dispatcher.plan("read_note", { name: "a.txt" }, world.alice);
    expect(plan.needs).toEqual([{ action: "fs.read", path: world.at("a.txt") }]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(world.sink.events).toHaveLength(0);
    await expect(dispatcher.call("read_note", { name: "a.txt" }, world.alice)).resolves.toBe("alpha");
  });

  it("leaves the application's own realm as it was: no lockdown, no SES globals", () => {
    expect(Object.isFrozen(Object.prototype)).toBe(false);
    expect(Object.isFrozen(Array.prototype)).toBe(false);
    for (const name of ["lockdown", "harden", "Compartment", "assert"]) expect(Object.hasOwn(globalThis, name)).toBe(false);
  });
});

describe("a module loaded with trusted: true", () => {
  it("runs in this process, and every event of its tools records the opt-out", async () => {
    const sink = world.sink;
    const d = createDispatcher({ tools: trusted.tools, audit: sink });
    sink.events.length = 0;
    await expect(d.call("read_note", { name: "a.txt" }, world.alice)).resolves.toBe("alpha");
    await expect(d.call("read_note", { name: "secret" }, world.alice)).rejects.toThrow(CapabilityDenied);
    await expect(d.call("failing", {}, world.alice)).rejects.toMatchObject({ code: "ERR_FOREIGN_FAILURE", cause: expect.any(RangeError) as unknown });
    expect(sink.toolEvents().map((e) => e.toolCode)).toEqual(["trusted", "trusted", "trusted"]);
  });

  it("records the opt-out in the SQLite audit store's hashed events", async () => {
    const store = await openAuditStore({ kind: "sqlite", path: ":memory:" });
    try {
      const d = createDispatcher({ tools: [...trusted.tools.filter((t) => t.name === "greet"), ...sandboxed.tools.filter((t) => t.name === "read_note")], audit: store });
      await d.call("greet", { who: "bob" }, world.alice);
      await d.call("read_note", { name: "a.txt" }, world.alice);
      const records = await store.query({});
      expect(records.map((r) => [r.event.tool, r.event.toolCode])).toEqual([
        ["greet", "trusted"],
        ["read_note", "sandboxed"],
      ]);
      expect((await store.verify()).ok).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe("sandboxed and trusted, differentially", () => {
  // Mostly names that exist and grants that reach them, so that allowed reads, denials and refused inputs all come up often.
  const name = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom("a.txt", "b.txt") },
    { weight: 1, arbitrary: fc.constantFrom("secret/key", "missing.txt", "../a.txt", "./b.txt", "secret/../a.txt", "") },
  );
  const rule = fc.record({ name: fc.constantFrom("a.txt", "b.txt", "secret", "."), ops: fc.subarray(["read", "write"] as const, { minLength: 1 }), subtree: fc.boolean() });
  const outcome = (p: Promise<unknown>) =>
    p.then(
      (value) => ({ value }),
      (e: unknown) => ({ error: e instanceof AgentcapError ? e.code : e instanceof Error ? e.name : "thrown" }),
    );

  it("give every call the same result or the same typed error, whatever the caller's grant and the input", async () => {
    const trustedDispatcher = createDispatcher({ tools: trusted.tools, audit: world.sink });
    await fc.assert(
      fc.asyncProperty(fc.array(rule, { minLength: 1, maxLength: 3 }), fc.constantFrom("greedy", "narrowing"), name, name, async (rules, tool, x, y) => {
        const cap = narrow(world.alice, { tools: [tool], fs: rules.map((r) => ({ path: world.at(r.name), ops: r.ops, subtree: r.subtree })) });
        const input = tool === "greedy" ? { declared: x, actual: y } : { first: x, second: y };
        const [inSandbox, inProcess] = await Promise.all([outcome(dispatcher.call(tool, input, cap)), outcome(trustedDispatcher.call(tool, input, cap))]);
        expect(inSandbox).toEqual(inProcess);
      }),
      { numRuns: 300 },
    );
  });
});

describe("loading", () => {
  const load = (source: string) => loadToolModule({ source });
  const tool = (body: string) =>
    `import { z } from "zod";\nimport { defineTool } from "agentcap/sandbox";\nexport const t = defineTool({ name: "t", description: "t", input: z.object({}), needs: () => [] }, () => { ${body} });\n`;

  it("accepts TypeScript source", async () => {
    const m = await load(tool("const n: number = 1; return n;"));
    try {
      expect(m.tools.map((t) => t.name)).toEqual(["t"]);
    } finally {
      await m.close();
    }
  });

  it("applies a schema's asynchronous refinements inside the sandbox", async () => {
    const source = tool("return 'ok';").replace("z.object({})", 'z.object({ x: z.string().refine(async (v) => v !== "no", "not no") })');
    const m = await load(source);
    try {
      const d = createDispatcher({ tools: m.tools, audit: world.sink });
      const cap = createMint({ issuer: "sandbox-tests", policy: () => ({ tools: ["t"] }) }).issue({ id: "alice" });
      await expect(d.call("t", { x: "yes" }, cap)).resolves.toBe("ok");
      await expect(d.call("t", { x: "no" }, cap)).rejects.toThrow("invalid input for tool t: x: not no");
    } finally {
      await m.close();
    }
  });

  it.each<[string, () => Promise<unknown>, new (...args: never[]) => AgentcapError, RegExp]>([
    ["source that does not compile", () => load("export const = ;"), InvalidInput, /does not compile/],
    ["a module that exports no tools", () => load("export const x = 1;"), InvalidInput, /exports no tools/],
    ["two tools of one name", () => load(`${tool("")}export const u = defineTool({ name: "t", description: "u", input: z.object({}), needs: () => [] }, () => 1);`), InvalidInput, /two tools named t/],
    ["a tool whose input is not a zod schema", () => load('import { defineTool } from "agentcap/sandbox"; export const t = defineTool({ name: "t", description: "d", input: {}, needs: () => [] }, () => 1);'), InvalidInput, /zod object schema/],
    ["a tool whose input is not an object", () => load(tool("").replace("z.object({})", "z.string()")), InvalidInput, /zod object schema/],
    ["an input schema too large to show a model", () => load(tool("").replace("z.object({})", 'z.object({ a: z.string().describe("x".repeat(200000)) })')), InvalidInput, /larger than 100000 characters/],
    ["an input schema nested too deeply", () => load(tool("").replace("z.object({})", `${"z.object({ a: ".repeat(40)}z.string()${" })".repeat(40)}`)), InvalidInput, /nested more than 32 levels/],
    ["an invalid tool name", () => load(tool("").replace('name: "t"', 'name: "no spaces allowed"')), InvalidInput, /tool name/],
    ["source text importing a file", () => load('import "./helper.js";'), SandboxViolation, /source text cannot import files/],
    ["a module importing a file outside its directory", () => loadToolModule(path.join(path.dirname(NOTES_MODULE), "outside.ts")), SandboxViolation, /outside its own directory/],
    ["trusted source text", () => loadToolModule({ source: tool("") }, { trusted: true }), InvalidInput, /by path/],
    ["limits for a trusted module", () => loadToolModule(NOTES_MODULE, { trusted: true, limits: { timeoutMs: 10 } }), InvalidInput, /apply to sandboxed modules/],
    ["an endowed function", () => loadToolModule({ source: tool("") }, { endowments: { f: () => 1 } }), InvalidInput, /endowments.f is a function/],
    ["an endowed class instance", () => loadToolModule({ source: tool("") }, { endowments: { when: new Map() } }), InvalidInput, /endowments.when is a class instance/],
    ["endowed data that is not plain", () => loadToolModule({ source: tool("") }, { endowments: { when: { at: new Date() } } }), InvalidInput, /endowments.when/],
    ["an endowment named like no identifier", () => loadToolModule({ source: tool("") }, { endowments: { "a-b": 1 } }), InvalidInput, /endowments/],
    ["Node's own module in the allowlist", () => loadToolModule({ source: tool("") }, { allow: ["node:fs"] }), InvalidInput, /allow lists package names/],
    ["a limit of zero", () => loadToolModule({ source: tool("") }, { limits: { timeoutMs: 0 } }), InvalidInput, /timeoutMs/],
    ["an unknown option", () => loadToolModule({ source: tool("") }, { sandbox: false } as never), InvalidInput, /sandbox/],
    ["a log that is not a function", () => loadToolModule({ source: tool("") }, { log: "stderr" } as never), InvalidInput, /options of loadToolModule: log: must be a function/],
  ])("refuses %s", async (_name, attempt, type, message) => {
    const error = await attempt().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(type);
    expect((error as Error).message).toMatch(message);
  });

  it("refuses a first argument that is not the handler's capability, at the call, with a violation", async () => {
    const m = await loadToolModule({ source: tool("return ctx.endowments.files.read({ narrow() { return this; } }, 'a.txt');").replace("() => {", "(i, cap, ctx) => {") }, { endowments: { files: world.files } });
    try {
      const d = createDispatcher({ tools: m.tools, audit: world.sink });
      const cap = createMint({ issuer: "sandbox-tests", policy: () => ({ tools: ["t"] }) }).issue({ id: "alice" });
      const error = await d.call("t", {}, cap).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SandboxViolation);
      expect((error as Error).message).toMatch(/files\.read needs a capability given to a handler/);
      expect(error).not.toBeInstanceOf(NotACapability);
    } finally {
      await m.close();
    }
  });
});
