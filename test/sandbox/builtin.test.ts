import Database from "better-sqlite3";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { narrow } from "../../src/kernel/capability.ts";
import { AgentcapError, InvalidInput } from "../../src/kernel/errors.ts";
import type { Grant } from "../../src/kernel/grant.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { createExec } from "../../src/resources/exec/index.ts";
import { createFileSystem } from "../../src/resources/fs/index.ts";
import { createHttpClient } from "../../src/resources/http/index.ts";
import { createSqlDatabase, type SchemaSpec } from "../../src/resources/sql/index.ts";
import { loadBuiltinTools, type BuiltinResources, type ToolModule } from "../../src/sandbox/index.ts";
import { commandTool, databaseTools, fetchTool, fileTools } from "../../src/tools/index.ts";
import { createDispatcher, type Dispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink, type MemorySink } from "../tools/memory-sink.ts";

/*
 * The built-in tools with their handlers sandboxed must be the built-in
 * tools: for every call, allowed or denied, the same result or the same
 * typed error, and the same audit events, as the in-process tools, except
 * that each tool event says how its handler ran.
 */

const SCHEMA: SchemaSpec = {
  Customer: { table: "customers", primaryKey: "id", fields: { id: { type: "integer" }, tenantId: { type: "integer", column: "tenant_id" }, name: { type: "text" } } },
};

interface Side {
  readonly sink: MemorySink;
  readonly dispatcher: Dispatcher;
  readonly close: () => Promise<void>;
}

let dir: string;
let server: http.Server;
let origin: string;
let sqlite: Database.Database;
const sides: Record<"inProcess" | "sandboxed" | "trusted", Side> = {} as never;

function resources(sink: MemorySink): BuiltinResources {
  return {
    files: createFileSystem({ baseDir: dir, audit: sink }),
    http: createHttpClient({ audit: sink }),
    database: { db: createSqlDatabase({ sqlite, schema: SCHEMA, audit: sink }), schema: SCHEMA },
    exec: createExec({ audit: sink }),
  };
}

beforeAll(async () => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "agentcap-builtin-")));
  fs.mkdirSync(path.join(dir, "docs"));
  fs.writeFileSync(path.join(dir, "docs", "a.txt"), "héllo");
  fs.writeFileSync(path.join(dir, "secret.txt"), "hunter2");
  fs.symlinkSync(path.join(dir, "secret.txt"), path.join(dir, "docs", "link.txt"));
  server = http.createServer((req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(`${req.method ?? ""} ${req.url ?? ""}`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sqlite = new Database(":memory:");
  sqlite.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT NOT NULL); INSERT INTO customers VALUES (1, 42, 'Ada'), (2, 43, 'Linus');");

  const inProcessSink = memorySink();
  const r = resources(inProcessSink);
  const f = fileTools(r.files as never);
  const d = databaseTools(r.database?.db as never, SCHEMA);
  sides.inProcess = {
    sink: inProcessSink,
    dispatcher: createDispatcher({ tools: [f.read, f.write, f.list, fetchTool(r.http as never), d.query, d.create, d.update, d.delete, d.aggregate, commandTool(r.exec as never)], audit: inProcessSink }),
    close: () => Promise.resolve(),
  };
  for (const side of ["sandboxed", "trusted"] as const) {
    const sink = memorySink();
    const loaded: ToolModule = await loadBuiltinTools(resources(sink), side === "trusted" ? { trusted: true } : {});
    sides[side] = { sink, dispatcher: createDispatcher({ tools: loaded.tools, audit: sink }), close: () => loaded.close() };
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(Object.values(sides).map((s) => s.close()));
  server.close();
  sqlite.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const TOOLS = ["read_file", "write_file", "list_files", "fetch_url", "db_query", "db_create", "db_update", "db_delete", "db_aggregate", "run_command"];

function grant(): Grant {
  return {
    tools: TOOLS,
    fs: [{ path: path.join(dir, "docs"), ops: ["read", "write", "list"] }],
    http: [{ origin, methods: ["GET"], pathPrefix: "/public" }],
    db: [{ model: "Customer", ops: ["read", "create", "update"], scope: { tenantId: 42 } }],
    exec: [{ program: "/usr/bin/echo", allowExtraArgs: true, args: [] }],
  };
}

/** Calls as a model would make them: each allowed, or denied by the grant, the input schema or the resource. */
function calls(): readonly [string, unknown][] {
  const docs = path.join(dir, "docs");
  return [
    ["read_file", { path: path.join(docs, "a.txt") }],
    ["read_file", { path: path.join(dir, "secret.txt") }],
    ["read_file", { path: path.join(docs, "link.txt") }],
    ["read_file", { path: path.join(docs, "missing.txt") }],
    ["read_file", { path: 42 }],
    ["write_file", { path: path.join(docs, "out.txt"), content: "wrïtten" }],
    ["write_file", { path: path.join(dir, "escape.txt"), content: "x" }],
    ["list_files", { path: docs }],
    ["list_files", { path: dir }],
    ["fetch_url", { url: `${origin}/public` }],
    ["fetch_url", { url: `${origin}/public`, method: "POST", body: "x" }],
    ["fetch_url", { url: `${origin}/private` }],
    ["db_query", { model: "Customer", fields: ["id", "name"] }],
    ["db_query", { model: "Customer", fields: ["id"], where: { tenantId: 43 } }],
    ["db_create", { model: "Customer", values: { id: 3, tenantId: 42, name: "Grace" }, returning: ["id"] }],
    ["db_update", { model: "Customer", set: { name: "Ada L." }, where: { id: 1 } }],
    ["db_delete", { model: "Customer", where: { id: 1 } }],
    ["db_aggregate", { model: "Customer", aggregates: { n: { fn: "count" } } }],
    ["db_aggregate", { model: "Customer", aggregates: { n: { fn: "count" } }, where: { tenantId: 43 } }],
    ["run_command", { argv: ["/usr/bin/echo", "hi"], cwd: docs }],
    ["run_command", { argv: ["/bin/cat", "/etc/hostname"], cwd: docs }],
  ];
}

type Outcome = { ok: true; value: unknown } | { ok: false; code: string; message: string };

async function outcome(side: Side, tool: string, input: unknown): Promise<Outcome> {
  const cap = narrow(createMint({ issuer: "builtin-tests", policy: () => grant() }).issue({ id: "alice", tenants: [] }), grant());
  try {
    return { ok: true, value: await side.dispatcher.call(tool, input, cap) };
  } catch (e) {
    if (!(e instanceof AgentcapError)) throw e;
    return { ok: false, code: e.code, message: e.message.replaceAll(UUID, "<id>") };
  }
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** An event as a comparison sees it: with ids, times and hashes of the run's own, and without how the tool's code ran. */
function shape(event: unknown): unknown {
  const text = JSON.stringify(event, (key, value: unknown) => (["at", "hash", "capabilityHash", "issuedAt", "durationMs", "toolCode", "mintId", "elapsedMs"].includes(key) ? undefined : value));
  return JSON.parse(text.replaceAll(UUID, "<id>"));
}

describe("the built-in tools with sandboxed handlers", () => {
  it("give every call the result, the typed error and the audit events the in-process tools give", async () => {
    const seen: string[] = [];
    for (const [tool, input] of calls()) {
      const results = [];
      // Each side meets the same rows: the database is put back after each one's call.
      sqlite.exec("SAVEPOINT s");
      for (const side of Object.values(sides)) {
        side.sink.events.length = 0;
        results.push({ outcome: await outcome(side, tool, input), events: side.sink.events.map(shape) });
        sqlite.exec("ROLLBACK TO s");
      }
      sqlite.exec("RELEASE s");
      const [inProcess, sandboxed, trusted] = results;
      expect({ tool, input, ...sandboxed }).toEqual({ tool, input, ...inProcess });
      expect({ tool, input, ...trusted }).toEqual({ tool, input, ...inProcess });
      seen.push(inProcess?.outcome.ok === true ? "ok" : (inProcess?.outcome.code ?? ""));
    }
    // The table holds allowed calls and each kind of refusal: the grant, the input schema, the file system.
    const [ok, denied] = ["ok", "ERR_CAPABILITY_DENIED"];
    expect(seen).toEqual([ok, denied, denied, "ERR_FILE_SYSTEM", "ERR_INVALID_INPUT", ok, denied, ok, denied, ok, denied, denied, ok, denied, ok, ok, denied, ok, denied, ok, denied]);
  });

  it("record in every tool event how the handler ran", async () => {
    for (const [name, side] of [["sandboxed", sides.sandboxed], ["trusted", sides.trusted]] as const) {
      side.sink.events.length = 0;
      await outcome(side, "read_file", { path: path.join(dir, "docs", "a.txt") });
      expect(side.sink.events.find((e) => e.kind === "tool")).toMatchObject({ tool: "read_file", toolCode: name });
    }
  });

  it("expose only the tools of the resources given", async () => {
    const sink = memorySink();
    const loaded = await loadBuiltinTools({ files: createFileSystem({ baseDir: dir, audit: sink }) });
    try {
      expect(loaded.tools.map((t) => t.name)).toEqual(["read_file", "write_file", "list_files"]);
    } finally {
      await loaded.close();
    }
  });

  it("refuse bad options and an empty set of resources with InvalidInput", async () => {
    await expect(loadBuiltinTools({})).rejects.toThrow(new InvalidInput("loadBuiltinTools needs at least one resource: files, http, database or exec"));
    await expect(loadBuiltinTools({ exec: createExec() }, { limits: { timeoutMs: -1 } })).rejects.toThrow(InvalidInput);
    await expect(loadBuiltinTools({ exec: createExec() }, { trusted: "yes" } as never)).rejects.toThrow(/options of loadBuiltinTools/);
    await expect(loadBuiltinTools({ exec: createExec() }, { log: 1 } as never)).rejects.toThrow(/options of loadBuiltinTools: log: must be a function/);
  });
});
