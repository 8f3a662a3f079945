import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/*
 * What importing an entry of the built package does to a fresh process: which
 * packages it loads (recorded by a module hook registered before the import)
 * and whether any global it could patch has changed afterwards.
 */
const root = fileURLToPath(new URL("../../", import.meta.url));
const ENGINES = ["better-sqlite3", "pg", "ai", "@modelcontextprotocol/sdk", "@biscuit-auth/biscuit-wasm", "ses", "esbuild", "drizzle-orm"];

function importInFreshProcess(entry: string): { readonly packages: string[]; readonly changedGlobals: string[] } {
  const script = `
    import { registerHooks } from "node:module";
    const seen = new Set();
    registerHooks({ load(url, context, next) { seen.add(url); return next(url, context); } });
    const watched = { console, Date, performance, process, globalThis };
    const before = new Map();
    // Read twice: reading a lazy global (fetch) defines others, which must count as already there.
    for (let pass = 0; pass < 2; pass++) for (const [owner, value] of Object.entries(watched)) for (const key of Reflect.ownKeys(value)) before.set(owner + "." + String(key), Reflect.get(value, key));
    await import(${JSON.stringify(entry)});
    const changed = [];
    for (const [owner, value] of Object.entries(watched)) for (const key of Reflect.ownKeys(value)) {
      const name = owner + "." + String(key);
      if (!before.has(name) || !Object.is(before.get(name), Reflect.get(value, key))) changed.push(name);
    }
    const packages = [...seen].flatMap((u) => { const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(u); return m ? [m[1]] : []; });
    process.stdout.write(JSON.stringify({ packages: [...new Set(packages)].sort(), changedGlobals: changed }));
  `;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: root, encoding: "utf8" });
  if (run.status !== 0) throw new Error(`importing ${entry} failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as { packages: string[]; changedGlobals: string[] };
}

describe("importing the built package", () => {
  it("the kernel (agentcap) loads no engine and patches no global", () => {
    const { packages, changedGlobals } = importInFreshProcess("agentcap");
    expect(packages.filter((p) => ENGINES.includes(p))).toEqual([]);
    // zod, a dependency of the kernel, keeps its schema registry on globalThis; nothing else may change.
    expect(changedGlobals.filter((g) => !g.startsWith("globalThis.__zod_"))).toEqual([]);
  });

  it.each([
    ["agentcap/fs", []],
    ["agentcap/http", []],
    ["agentcap/exec", []],
    ["agentcap/sql", []],
    ["agentcap/tools", []],
    ["agentcap/audit", []],
    ["agentcap/runtime", []],
    ["agentcap/sandbox", []],
    ["agentcap/token", ["@biscuit-auth/biscuit-wasm"]],
    ["agentcap/mcp", ["@biscuit-auth/biscuit-wasm", "@modelcontextprotocol/sdk"]],
  ])("%s loads only the engines it always needs: %j", (entry, engines) => {
    const { packages, changedGlobals } = importInFreshProcess(entry);
    expect(packages.filter((p) => ENGINES.includes(p))).toEqual(engines);
    expect(changedGlobals.filter((g) => g.startsWith("console.") || g.startsWith("Date.") || g.startsWith("performance."))).toEqual([]);
  });
});

/** Runs `body` in a fresh process where `missing` cannot be resolved, as if it were not installed; returns what it printed. */
function withoutPackage(missing: string, body: string): string {
  const script = `
    import { registerHooks } from "node:module";
    registerHooks({
      resolve(specifier, context, next) {
        if (specifier === ${JSON.stringify(missing)} || specifier.startsWith(${JSON.stringify(`${missing}/`)})) {
          const error = new Error("Cannot find package '" + specifier + "'");
          error.code = context.conditions.includes("require") ? "MODULE_NOT_FOUND" : "ERR_MODULE_NOT_FOUND";
          throw error;
        }
        return next(specifier, context);
      },
    });
    try { ${body} } catch (e) { process.stdout.write(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }
  `;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: root, encoding: "utf8" });
  return run.stdout;
}

describe("a missing optional engine", () => {
  it.each([
    ["better-sqlite3", `const { openAuditStore } = await import("agentcap/audit"); await openAuditStore({ kind: "sqlite", path: ":memory:" });`],
    ["pg", `const { openPostgresTokenStore } = await import("agentcap/token"); await openPostgresTokenStore({ connectionString: "postgres://127.0.0.1:1/x" });`],
    ["@modelcontextprotocol/sdk", `await import("agentcap/mcp");`],
    ["@biscuit-auth/biscuit-wasm", `await import("agentcap/token");`],
    ["ai", `await import("agentcap/testing");`],
    ["ses", `const { loadToolModule } = await import("agentcap/sandbox"); await loadToolModule({ source: "export const x = 1;" });`],
    ["esbuild", `const { loadToolModule } = await import("agentcap/sandbox"); await loadToolModule({ source: "export const x = 1;" });`],
    ["drizzle-orm", `const { schemaFromDrizzle } = await import("agentcap/sql"); await schemaFromDrizzle({});`],
  ])("%s is a MissingDependency naming the package to install", (missing, body) => {
    const seen = JSON.parse(withoutPackage(missing, body)) as { name: string; code: string; message: string };
    expect(seen).toMatchObject({ name: "MissingDependency", code: "ERR_MISSING_DEPENDENCY" });
    expect(seen.message).toContain(`npm install ${missing}`);
  });
});

describe("tracing", () => {
  it("importing any entry does not load @opentelemetry/api: it is looked for at the first tool call or resource access", () => {
    for (const entry of ["agentcap", "agentcap/tools", "agentcap/fs"]) {
      expect(importInFreshProcess(entry).packages.filter((p) => p.startsWith("@opentelemetry/"))).toEqual([]);
    }
  });

  it("without @opentelemetry/api installed, tool calls and resource accesses run untraced, with no error", () => {
    const body = `
      const { createMint, eventSink } = await import("agentcap");
      const { createDispatcher, defineTool } = await import("agentcap/tools");
      const { createFileSystem } = await import("agentcap/fs");
      const { z } = await import("zod");
      const files = createFileSystem({ baseDir: process.cwd() });
      const read = defineTool({ name: "read", description: "Reads package.json.", input: z.object({}), needs: () => [{ action: "fs.read", path: process.cwd() + "/package.json" }] },
        async (_i, cap) => (await files.read(cap, process.cwd() + "/package.json")).length > 0);
      const events = [];
      const dispatcher = createDispatcher({ tools: [read], audit: eventSink((e) => { events.push(e); }) });
      const cap = createMint({ issuer: "t", policy: () => ({ tools: ["read"], fs: [{ path: process.cwd(), ops: ["read"] }] }) }).issue({ id: "alice" });
      process.stdout.write(JSON.stringify({ result: await dispatcher.call("read", {}, cap), events: events.length }));
    `;
    expect(JSON.parse(withoutPackage("@opentelemetry/api", body))).toEqual({ result: true, events: 1 });
  });
});

describe("exported constants", () => {
  it("every exported array and object of every entry is frozen", async () => {
    const entries = ["agentcap", "agentcap/fs", "agentcap/http", "agentcap/sql", "agentcap/exec", "agentcap/tools", "agentcap/audit", "agentcap/token", "agentcap/runtime", "agentcap/sandbox", "agentcap/mcp", "agentcap/testing"];
    const unfrozen: string[] = [];
    for (const entry of entries) {
      const exports = (await import(entry)) as Record<string, unknown>;
      for (const [name, value] of Object.entries(exports)) {
        if (typeof value === "object" && value !== null && !Object.isFrozen(value)) unfrozen.push(`${entry}: ${name}`);
      }
    }
    expect(unfrozen).toEqual([]);
  });
});
