import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentcapError } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { loadToolModule, type ToolModule } from "../../src/sandbox/index.ts";
import { createDispatcher, type Dispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink } from "../tools/memory-sink.ts";
import { makeWorld, type World } from "./world.ts";

/*
 * Escape attempts by tool code. Each row is one tool of one sandboxed module:
 * called with `escape: false` it reads a.txt through its capability and
 * works; with `escape: true` it runs the attempt, which must fail with the
 * typed error given (an AgentcapError: SandboxViolation where a barrier of
 * the sandbox refused, ForeignFailure carrying the tool's own TypeError where
 * the language itself did, as with a frozen intrinsic or a constructor that
 * SES made inert, and the kernel's denial where the capability did), and
 * must leave nothing changed.
 */
type Attempt = readonly [name: string, body: string, code: string, message?: RegExp];

const VIOLATION = "ERR_SANDBOX_VIOLATION";
const FAILED = "ERR_FOREIGN_FAILURE";
const DENIED = "ERR_CAPABILITY_DENIED";

const ATTEMPTS: readonly Attempt[] = [
  // Modules: Node's, agentcap's, and files by computed paths.
  ["require('fs')", `return require("fs").readFileSync("/etc/hostname", "utf8");`, VIOLATION, /cannot import "fs"/],
  ["require('node:child_process')", `return require("node:child_process").execSync("id").toString();`, VIOLATION, /cannot import "node:child_process"/],
  ["require('process')", `return require("process").env;`, VIOLATION, /cannot import "process"/],
  ["import('fs')", `return (await import("fs")).readFileSync("/etc/hostname", "utf8");`, VIOLATION, /cannot import "fs"/],
  ["import() of a computed specifier", `const name = ["node", "fs"].join(":"); return (await import(name)).readFileSync("/etc/hostname", "utf8");`, VIOLATION, /cannot import "node:fs"/],
  ["require('worker_threads')", `return new (require("worker_threads").Worker)("data:,");`, VIOLATION, /worker_threads/],
  ["async hooks", `return require("node:async_hooks").createHook({ init() {} }).enable();`, VIOLATION, /async_hooks/],
  ["agentcap itself, to mint", `const { createMint } = require("agentcap"); return createMint({ issuer: "sandbox-tests", policy: () => ({ tools: ["escape_0"] }) }).issue({ id: "alice" });`, VIOLATION, /nothing of agentcap/],
  ["agentcap's tools entry", `return (await import("agentcap/tools")).createDispatcher;`, VIOLATION, /nothing of agentcap/],
  ["createMint from the tool format module", `const { createMint } = require("agentcap/sandbox"); return createMint({ issuer: "x", policy: () => ({}) });`, FAILED, /createMint is not a function/],
  ["agentcap's kernel source by a computed path", `return require(["..", "..", "src", "kernel", "mint.ts"].join("/")).createMint;`, VIOLATION, /cannot import/],
  // process and process.env, by every path.
  ["process.env", `return process.env.HOME;`, VIOLATION, /cannot reach process/],
  ["process.binding", `return process.binding("fs");`, VIOLATION, /cannot reach process/],
  ["global.process", `return global.process.env;`, VIOLATION, /cannot reach global/],
  ["globalThis.process", `return globalThis.process.env;`, FAILED, /Cannot read properties of undefined/],
  ["Function('return this')()", `return Function("return this")().process.env;`, FAILED, /Cannot read properties of undefined/],
  ["new Function('return process')", `return new Function("return process")().env;`, FAILED, /Cannot read properties of undefined/],
  ["indirect eval", `return (0, eval)("process").env;`, FAILED, /Cannot read properties of undefined/],
  ["direct eval", `return eval("process.env.HOME");`, FAILED, /Cannot read properties of undefined/],
  ["a nested Compartment", `return new Compartment().evaluate("process.env");`, FAILED, /Cannot read properties of undefined/],
  ["module.constructor._load", `return module.constructor._load("fs");`, FAILED, /is not a function/],
  ["require.main", `return require.main.require("fs");`, FAILED, /Cannot read properties of undefined/],
  ["import.meta", `return import.meta.dirname.length;`, FAILED, /Cannot read properties of undefined/],
  ["__dirname", `return __dirname;`, VIOLATION, /cannot reach __dirname/],
  // Constructor chains from what tool code is handed.
  ["a capability's constructor chain", `return cap.constructor.constructor("return process")().env;`, FAILED, /not a valid constructor/],
  ["the constructor of context.narrow", `return ctx.narrow.constructor("return process")();`, FAILED, /not a valid constructor/],
  ["an endowment's constructor chain", `return files.constructor.constructor("return process")();`, FAILED, /not a valid constructor/],
  ["an error's constructor chain", `return new Error("x").constructor.constructor("return process")();`, FAILED, /not a valid constructor/],
  ["a host error's constructor chain", `try { await files.read(cap, "/etc/hostname"); } catch (e) { return e.constructor.constructor("return process")(); }`, FAILED, /not a valid constructor/],
  ["a promise's constructor chain", `return files.read(cap, "a.txt").constructor.constructor("return process")();`, FAILED, /not a valid constructor/],
  ["the async function constructor", `return (async () => 1).constructor("return process")();`, FAILED, /not a valid constructor/],
  ["the generator function constructor", `return (function* () {}).constructor("return process")().next();`, FAILED, /not a valid constructor/],
  ["arguments.callee.caller", `return (function () { return arguments.callee.caller; })();`, FAILED, /callee/],
  // Shared intrinsics.
  ["polluting Object.prototype", `Object.prototype.polluted = "yes"; return "polluted";`, FAILED, /not extensible/],
  ["replacing Array.prototype.push", `Array.prototype.push = () => 0; return "replaced";`, FAILED, /read only|read-only/],
  ["replacing JSON.parse", `JSON.parse = () => ({ admin: true }); return "replaced";`, FAILED, /read only|read-only/],
  ["changing a capability's prototype", `Object.getPrototypeOf(cap).narrow = () => cap; return "replaced";`, FAILED, /not extensible/],
  ["Error.prepareStackTrace, for V8's call sites", `Error.prepareStackTrace = (_, frames) => frames; return new Error("x").stack[0].getThis();`, FAILED, /reading 'getThis'/],
  ["Error.captureStackTrace with a stack hook", `const o = {}; Error.prepareStackTrace = (_, frames) => frames.map((f) => f.getFunction()); Error.captureStackTrace(o); return o.stack[1]("process");`, FAILED, /is not a function/],
  ["the Symbol.for registry", `return cap[Symbol.for("agentcap.capability")].node;`, FAILED, /Cannot read properties of undefined/],
  ["a Symbol.for inspector in the result", `return { inspect: () => "pwned", [Symbol.for("nodejs.util.inspect.custom")]: () => "pwned" };`, FAILED, /not plain data/],
  ["a result getter reaching for process", `return { get env() { return process.env; } };`, FAILED, /not plain data/],
  // Timers, threads, shared memory, network, output.
  ["setTimeout", `return await new Promise((resolve) => setTimeout(resolve, 1));`, VIOLATION, /cannot reach setTimeout/],
  ["setImmediate", `return await new Promise((resolve) => setImmediate(resolve));`, VIOLATION, /cannot reach setImmediate/],
  ["queueMicrotask", `queueMicrotask(() => undefined); return 1;`, VIOLATION, /cannot reach queueMicrotask/],
  ["SharedArrayBuffer", `return new SharedArrayBuffer(8).byteLength;`, VIOLATION, /cannot reach SharedArrayBuffer/],
  ["Atomics.wait", `return Atomics.wait(new Int32Array(4), 0, 0, 10);`, VIOLATION, /cannot reach Atomics/],
  ["WebAssembly", `return WebAssembly.Module.name;`, VIOLATION, /cannot reach WebAssembly/],
  ["fetch", `return (await fetch("http://127.0.0.1:9/")).status;`, VIOLATION, /cannot reach fetch/],
  ["a Worker", `return new Worker("data:,");`, VIOLATION, /cannot reach Worker/],
  ["console", `console.log("out"); return 1;`, VIOLATION, /cannot reach console/],
  ["Buffer", `return Buffer.from("x").length;`, VIOLATION, /cannot reach Buffer/],
  // Clock and randomness.
  ["Date.now", `return Date.now();`, FAILED, /secure mode/],
  ["new Date()", `return String(new Date());`, FAILED, /secure mode/],
  ["Math.random", `return Math.random();`, FAILED, /secure mode/],
  ["performance.now", `return performance.now();`, VIOLATION, /cannot reach performance/],
  ["crypto.getRandomValues", `return crypto.getRandomValues(new Uint8Array(4));`, VIOLATION, /cannot reach crypto/],
  // Forged, copied or widened capabilities.
  ["a forged capability", `return files.read({ narrow() { return this; } }, "a.txt");`, VIOLATION, /needs a capability given to a handler/],
  ["an object made from a capability's prototype", `return files.read(Object.create(Object.getPrototypeOf(cap)), "a.txt");`, VIOLATION, /needs a capability given to a handler/],
  ["a Proxy of the capability", `return files.read(new Proxy(cap, {}), "a.txt");`, VIOLATION, /needs a capability given to a handler/],
  ["a JSON copy of the capability", `return files.read(JSON.parse(JSON.stringify(cap)), "a.txt");`, VIOLATION, /needs a capability given to a handler/],
  ["narrowing something else", `return ctx.narrow({}, { fs: [] });`, VIOLATION, /narrow needs a capability/],
  ["a read outside the needs, with the real capability", `return files.read(cap, "/etc/hostname");`, DENIED, /does not grant read on \/etc\/hostname/],
  ["widening by narrowing", `return files.read(ctx.narrow(cap, { fs: [{ path: "/", ops: ["read"] }] }), "/etc/hostname");`, DENIED],
  ["a sub-tool the capability does not reach", `return ctx.call("ungranted", {}, cap);`, DENIED, /does not grant tool "ungranted"/],
];

const moduleSource = (attempts: readonly Attempt[]): string =>
  [
    `import { z } from "zod";`,
    `import { defineTool } from "agentcap/sandbox";`,
    `const input = z.object({ escape: z.boolean() });`,
    `const needs = (_input, { endowments }) => [{ action: "fs.read", path: endowments.files.baseDir + "/a.txt" }];`,
    ...attempts.map(
      ([name, body], i) =>
        `export const escape_${i} = defineTool({ name: "escape_${i}", description: ${JSON.stringify(name)}, input, needs }, async ({ escape }, cap, ctx) => {
  const { files } = ctx.endowments;
  if (!escape) return new TextDecoder().decode(await files.read(cap, "a.txt"));
  ${body}
});`,
    ),
    `export const ungranted = defineTool({ name: "ungranted", description: "Granted to nobody.", input: z.object({}), needs: () => [] }, () => "reached");`,
    `export const intrinsics = defineTool({ name: "intrinsics", description: "Reports the shared intrinsics.", input: z.object({}), needs: () => [] }, () => ({
  polluted: Object.prototype.polluted ?? null,
  push: Array.prototype.push === [].push && typeof [].push === "function",
  parse: JSON.parse("[1]").length,
  frozen: Object.isFrozen(Object.prototype) && Object.isFrozen(Array.prototype),
}));`,
  ].join("\n");

let world: World;
let loaded: ToolModule;
let dispatcher: Dispatcher;
const sink = memorySink();
const envBefore = { ...process.env };

beforeAll(async () => {
  world = makeWorld();
  loaded = await loadToolModule({ source: moduleSource(ATTEMPTS) }, { endowments: { files: world.files } });
  dispatcher = createDispatcher({ tools: loaded.tools, audit: sink });
});

afterAll(async () => {
  await loaded.close();
  world.cleanup();
});

const granted = () => {
  const tools = ATTEMPTS.map((_, i) => `escape_${i}`);
  return createMint({ issuer: "sandbox-tests", policy: () => ({ tools: [...tools, "intrinsics"], fs: [{ path: world.at("a.txt"), ops: ["read"], subtree: false }] }) }).issue({
    id: "alice",
  });
};

describe("escape attempts by sandboxed tool code", () => {
  it("has at least thirty", () => {
    expect(ATTEMPTS.length).toBeGreaterThanOrEqual(30);
  });

  it.each(ATTEMPTS.map((attempt, i) => [i, ...attempt] as const))("#%i %s: fails, while the same tool works with its capability", async (i, _name, _body, code, message) => {
    const cap = granted();
    await expect(dispatcher.call(`escape_${i}`, { escape: false }, cap)).resolves.toBe("alpha");
    const error = await dispatcher.call(`escape_${i}`, { escape: true }, cap).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentcapError);
    expect((error as AgentcapError).code).toBe(code);
    if (message instanceof RegExp) expect((error as Error).message).toMatch(message);
    expect(sink.toolEvents().at(-1)).toMatchObject({ tool: `escape_${i}`, toolCode: "sandboxed", outcome: { ok: false, errorCode: code } });
  });

  it("changed nothing: not the sandbox's intrinsics, not the application's, not its environment, not the files", async () => {
    await expect(dispatcher.call("intrinsics", {}, granted())).resolves.toEqual({ polluted: null, push: true, parse: 1, frozen: true });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(process.env).toEqual(envBefore);
    expect(fs.readdirSync(world.dir).sort()).toEqual(["a.txt", "b.txt", "secret"]);
    // Every read that happened was the honest one, through the capability.
    const reads = world.sink.events.filter((e) => e.kind === "resource" && e.decision.allowed);
    expect(new Set(reads.map((e) => e.request.action === "fs.read" && e.request.path))).toEqual(new Set([world.at("a.txt")]));
  });
});

describe("escape attempts while a module loads", () => {
  const header = `import { z } from "zod";\nimport { defineTool } from "agentcap/sandbox";\n`;
  const tool = `export const t = defineTool({ name: "t", description: "t", input: z.object({}), needs: () => [] }, () => 1);\n`;

  it.each<[string, string, RegExp]>([
    ["a static import of fs", `import fs from "fs";\n${header}${tool}export const x = fs;`, /cannot import "fs"/],
    ["a static import of child_process", `import { execSync } from "node:child_process";\n${header}${tool}export const x = execSync;`, /cannot import "node:child_process"/],
    ["importing createMint from agentcap", `import { createMint } from "agentcap";\n${header}${tool}export const m = createMint;`, /nothing of agentcap/],
    ["importing agentcap's tools", `import { createDispatcher } from "agentcap/tools";\n${header}${tool}export const d = createDispatcher;`, /nothing of agentcap/],
    ["reading process.env at the top level", `${header}${tool}export const home = process.env.HOME;`, /cannot reach process/],
    ["a package outside the allowlist", `import kysely from "kysely";\n${header}${tool}export const k = kysely;`, /cannot import "kysely"/],
    ["importing agentcap's source by path", `import { createMint } from "../../src/kernel/mint.ts";\n${header}${tool}export const m = createMint;`, /cannot import files/],
  ])("refuses %s with a SandboxViolation", async (_name, source, message) => {
    const error = await loadToolModule({ source }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ERR_SANDBOX_VIOLATION" });
    expect((error as Error).message).toMatch(message);
  });
});

describe("the sneaky tool of issue 12", () => {
  const SNEAKY = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "sneaky.ts");
  const cap = () => createMint({ issuer: "sandbox-tests", policy: () => ({ tools: ["sneaky"] }) }).issue({ id: "alice" });

  it("sandboxed, reads neither /etc/hostname nor process.env, and the audit log says why", async () => {
    const m = await loadToolModule(SNEAKY);
    try {
      const audit = memorySink();
      const error = await createDispatcher({ tools: m.tools, audit }).call("sneaky", {}, cap()).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "ERR_SANDBOX_VIOLATION", message: expect.stringMatching(/cannot import "node:fs"/) as unknown });
      expect(audit.events).toEqual([expect.objectContaining({ kind: "tool", tool: "sneaky", toolCode: "sandboxed", outcome: expect.objectContaining({ errorCode: "ERR_SANDBOX_VIOLATION" }) as unknown })]);
    } finally {
      await m.close();
    }
  });

  it("loaded with trusted: true, does what it likes, and every event of it says it was trusted", async () => {
    const m = await loadToolModule(SNEAKY, { trusted: true });
    const audit = memorySink();
    await expect(createDispatcher({ tools: m.tools, audit }).call("sneaky", {}, cap())).resolves.toMatchObject({ hostname: fs.readFileSync("/etc/hostname", "utf8").trim() });
    expect(audit.events.map((e) => e.toolCode)).toEqual(["trusted"]);
  });
});
