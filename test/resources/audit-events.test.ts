import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openAuditStore } from "../../src/audit/open.ts";
import type { AuditEvent, AuditSink } from "../../src/kernel/audit-sink.ts";
import { AuditFailure, CapabilityDenied, InvalidInput } from "../../src/kernel/errors.ts";
import { createMint, narrow, type Capability, type FullReach, type Grant } from "../../src/index.ts";
import { createExec } from "../../src/resources/exec/runner.ts";
import { createFileSystem } from "../../src/resources/fs/file-system.ts";
import { createHttpClient } from "../../src/resources/http/client.ts";
import { createSqlDatabase } from "../../src/resources/sql/database.ts";
import type { SchemaSpec } from "../../src/resources/sql/schema.ts";
import { fileTools } from "../../src/tools/builtin/files.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink, type MemorySink } from "../tools/memory-sink.ts";
import { startServers } from "./http-fixtures.ts";

/*
 * Every resource writes exactly one "resource" event per access, allowed or
 * denied, before the access settles, and fails closed with AuditFailure when
 * its sink cannot take the event. One table of accesses drives the same
 * checks over the four resources.
 */

let dir: string;
let server: Awaited<ReturnType<typeof startServers>>;
let sqlite: Database.Database;
const ECHO = realpathSync("/bin/echo");
const SCHEMA: SchemaSpec = {
  Note: { table: "notes", primaryKey: "id", fields: { id: { type: "integer" }, tenantId: { type: "integer", column: "tenant_id" }, body: { type: "text" } } },
  Secret: { table: "secrets", primaryKey: "id", fields: { id: { type: "integer" }, body: { type: "text" } } },
};

beforeAll(async () => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), "agentcap-audit-events-")));
  writeFileSync(join(dir, "a.txt"), "hello");
  writeFileSync(join(dir, "secret.txt"), "no");
  server = await startServers(["127.0.0.1"]);
  sqlite = new Database(":memory:");
  sqlite.exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, body TEXT NOT NULL);
    CREATE TABLE secrets (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
    INSERT INTO notes VALUES (1, 7, 'mine'), (2, 8, 'theirs'); INSERT INTO secrets VALUES (1, 'hidden');`);
});
afterAll(async () => {
  await server.close();
  sqlite.close();
  rmSync(dir, { recursive: true, force: true });
});

const origin = () => `http://127.0.0.1:${server.port}`;
const grant = (): Grant => ({
  tools: ["read_file"],
  fs: [
    { path: join(dir, "a.txt"), ops: ["read"] },
    { path: dir, ops: ["list"] },
  ],
  http: [{ origin: origin(), methods: ["GET"], allowPrivateNetwork: true }],
  db: [{ model: "Note", ops: ["read"], scope: { tenantId: 7 } }],
  exec: [{ program: ECHO, cwd: dir }],
});
const rootCap = (): Capability<FullReach> => createMint({ issuer: "audit-tests", policy: grant }).issue({ id: "alice" });

/** One resource, built with or without a sink, and an allowed, a denied and an invalid access to it. */
interface Case {
  readonly name: string;
  readonly make: (audit: AuditSink | undefined) => {
    allowed: (cap: Capability<FullReach>) => Promise<unknown>;
    denied: (cap: Capability<FullReach>) => Promise<unknown>;
    invalid: (cap: Capability<FullReach>) => Promise<unknown>;
  };
  /** What the allowed access's event must say. */
  readonly allowedRequest: () => Record<string, unknown>;
  readonly allowedBytes: number;
  readonly deniedRequest: () => Record<string, unknown>;
}

const CASES: readonly Case[] = [
  {
    name: "file system",
    make: (audit) => {
      const fsys = createFileSystem({ baseDir: dir, ...(audit === undefined ? {} : { audit }) });
      return {
        allowed: (cap) => fsys.read(cap, "a.txt"),
        denied: (cap) => fsys.read(cap, "secret.txt"),
        invalid: (cap) => fsys.read(cap, 42 as unknown as string),
      };
    },
    allowedRequest: () => ({ action: "fs.read", path: join(dir, "a.txt") }),
    allowedBytes: 5,
    deniedRequest: () => ({ action: "fs.read", path: join(dir, "secret.txt") }),
  },
  {
    name: "HTTP client",
    make: (audit) => {
      const http = createHttpClient(audit === undefined ? {} : { audit });
      return {
        // A redirect inside the call: still one event, about the caller's URL.
        allowed: (cap) => http.request(cap, `${origin()}/redirect?to=/echo`),
        denied: (cap) => http.request(cap, `${origin()}/echo`, { method: "POST", body: "x" }),
        invalid: (cap) => http.request(cap, "ftp://example.com/"),
      };
    },
    allowedRequest: () => ({ action: "http.request", method: "GET", url: `${origin()}/redirect?to=/echo` }),
    allowedBytes: -1, // the echo body's length depends on the headers; checked to be positive
    deniedRequest: () => ({ action: "http.request", method: "POST", url: `${origin()}/echo` }),
  },
  {
    name: "SQL database",
    make: (audit) => {
      const db = createSqlDatabase({ sqlite, schema: SCHEMA, ...(audit === undefined ? {} : { audit }) });
      return {
        allowed: (cap) => db.read(cap, { model: "Note", fields: ["id", "body"] }),
        denied: (cap) => db.read(cap, { model: "Secret", fields: ["body"] }),
        invalid: (cap) => db.read(cap, { model: "Nope", fields: ["x"] }),
      };
    },
    allowedRequest: () => ({ action: "db.read", model: "Note", fields: ["id", "body"], scope: { tenantId: 7 } }),
    allowedBytes: Buffer.byteLength(JSON.stringify([{ id: 1, body: "mine" }])),
    deniedRequest: () => ({ action: "db.read", model: "Secret", fields: ["body"] }),
  },
  {
    name: "subprocess",
    make: (audit) => {
      const exec = createExec(audit === undefined ? {} : { audit });
      return {
        allowed: (cap) => exec.run(cap, [ECHO, "hi"], { cwd: dir }),
        denied: (cap) => exec.run(cap, [ECHO, "hi"], { cwd: "/" }),
        invalid: (cap) => exec.run(cap, ["echo", "hi"], { cwd: dir }),
      };
    },
    allowedRequest: () => ({ action: "exec", argv: [ECHO, "hi"], cwd: dir }),
    allowedBytes: 3,
    deniedRequest: () => ({ action: "fs.list", path: "/" }),
  },
];

describe.each(CASES)("the $name", (c) => {
  let sink: MemorySink;
  let cap: Capability<FullReach>;
  beforeEach(() => {
    sink = memorySink();
    cap = rootCap();
  });
  afterEach(() => {
    sink.failWith(null);
  });

  const only = (): AuditEvent => {
    expect(sink.events).toHaveLength(1);
    return sink.events[0] as AuditEvent;
  };

  it("records an allowed access as one resource event, before it settles", async () => {
    await c.make(sink).allowed(cap);
    const event = only();
    expect(event).toMatchObject({ kind: "resource", tool: null, request: c.allowedRequest(), decision: { allowed: true, capabilityId: cap.id } });
    expect(event.subject.capabilityId).toBe(cap.id);
    expect(event.subject.capabilityHash).toBe(cap.hash);
    expect(event.subject.mint.principal).toBe("alice");
    expect(event.durationMs).toBeGreaterThanOrEqual(0);
    expect(event.outcome.ok).toBe(true);
    const bytes = event.outcome.ok ? event.outcome.resultBytes : null;
    if (c.allowedBytes < 0) expect(bytes).toBeGreaterThan(0);
    else expect(bytes).toBe(c.allowedBytes);
  });

  it("records a denied access as one resource event carrying the kernel's denial", async () => {
    await expect(c.make(sink).denied(cap)).rejects.toThrow(CapabilityDenied);
    const event = only();
    expect(event).toMatchObject({
      kind: "resource",
      tool: null,
      request: c.deniedRequest(),
      decision: { allowed: false, code: "ERR_CAPABILITY_DENIED", capabilityId: cap.id, link: 0 },
      outcome: { ok: false, errorCode: "ERR_CAPABILITY_DENIED" },
    });
  });

  it("writes no event for input that never became a canonical request", async () => {
    await expect(c.make(sink).invalid(cap)).rejects.toThrow(InvalidInput);
    expect(sink.events).toEqual([]);
  });

  it("fails an allowed access closed with AuditFailure when the sink fails, withholding the result", async () => {
    sink.failWith(new Error("disk full"));
    const failure = await c.make(sink).allowed(cap).then(
      () => null,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(AuditFailure);
    expect((failure as AuditFailure).message).toMatch(/its result is withheld .*disk full/);
    expect((failure as AuditFailure).cause).toEqual(new Error("disk full"));
  });

  it("fails a denied access with AuditFailure too, not with the denial", async () => {
    sink.failWith(new Error("disk full"));
    await expect(c.make(sink).denied(cap)).rejects.toThrow(AuditFailure);
    await expect(c.make(sink).denied(cap)).rejects.toThrow(/had failed with ERR_CAPABILITY_DENIED/);
  });

  it("fails closed when the sink throws synchronously", async () => {
    const throwing: AuditSink = {
      write: () => {
        throw new Error("store closed");
      },
    };
    await expect(c.make(throwing).allowed(cap)).rejects.toThrow(AuditFailure);
  });

  it("without a sink, records nothing and behaves as before", async () => {
    const plain = c.make(undefined);
    await expect(plain.allowed(cap)).resolves.toBeDefined();
    await expect(plain.denied(cap)).rejects.toThrow(CapabilityDenied);
    await expect(plain.invalid(cap)).rejects.toThrow(InvalidInput);
    expect(sink.events).toEqual([]);
  });
});

describe("events of a particular access", () => {
  it("an exec denial keeps the notes the resource adds to the kernel's reason", async () => {
    const sink = memorySink();
    const exec = createExec({ audit: sink });
    const cap = narrow(rootCap(), { fs: [{ path: dir, ops: ["list"] }], exec: [{ program: ECHO, args: ["only-this"], cwd: dir }] });
    await expect(exec.run(cap, [ECHO, "hi"], { cwd: dir })).rejects.toThrow(CapabilityDenied);
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]?.request).toMatchObject({ action: "exec", argv: [ECHO, "hi"] });
    expect(sink.events[0]?.decision).toMatchObject({ allowed: false, link: 1 });
  });

  it("a redirect to a URL the capability does not grant records that hop's denial", async () => {
    const sink = memorySink();
    const http = createHttpClient({ audit: sink });
    const cap = narrow(rootCap(), { http: [{ origin: origin(), methods: ["GET"], pathPrefix: "/redirect", allowPrivateNetwork: true }] });
    await expect(http.request(cap, `${origin()}/redirect?to=/echo`)).rejects.toThrow(CapabilityDenied);
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]?.request).toMatchObject({ action: "http.request", url: `${origin()}/echo` });
    expect(sink.events[0]?.decision).toMatchObject({ allowed: false, link: 1 });
  });

  it("a file system refuses an audit option that is not a sink", () => {
    expect(() => createFileSystem({ baseDir: dir, audit: {} as AuditSink })).toThrow(/audit must be an AuditSink/);
  });
});

describe("with the SQLite audit store", () => {
  it("a tool call and its resource access share the lineage, and the chain verifies", async () => {
    const logDir = mkdtempSync(join(tmpdir(), "agentcap-audit-store-"));
    const store = await openAuditStore({ kind: "sqlite", path: join(logDir, "audit.db") });
    try {
      const files = fileTools(createFileSystem({ baseDir: dir, audit: store }));
      const dispatcher = createDispatcher({ tools: [files.read], audit: store });
      const cap = narrow(rootCap(), { tools: ["read_file"], fs: [{ path: dir, ops: ["read"] }] });
      await expect(dispatcher.call("read_file", { path: "a.txt" }, cap)).resolves.toMatchObject({ text: "hello" });
      // Denied by the dispatcher before the handler runs: the tool's event alone.
      await expect(dispatcher.call("read_file", { path: "secret.txt" }, cap)).rejects.toThrow(CapabilityDenied);

      const records = await store.query({ descendantsOf: cap.id });
      const [resource, tool] = records.map((r) => r.event);
      expect(records.map((r) => [r.event.kind, r.event.request.action, r.event.decision.allowed])).toEqual([
        ["resource", "fs.read", true],
        ["tool", "tool.call", true],
        ["tool", "fs.read", false],
      ]);
      // The resource ran under the handler's capability: the tool's, narrowed to the call's needs.
      expect(resource?.tool).toBe("read_file");
      const toolLineage = tool?.subject.lineage.map((l) => l.id) ?? [];
      expect(resource?.subject.lineage.map((l) => l.id).slice(0, toolLineage.length)).toEqual(toolLineage);
      expect(resource?.subject.mint).toEqual(tool?.subject.mint);
      expect(resource?.outcome).toEqual({ ok: true, resultBytes: 5 });

      const report = await store.verify();
      expect(report).toMatchObject({ ok: true, events: 3 });
    } finally {
      await store.close();
      rmSync(logDir, { recursive: true, force: true });
    }
  });
});
