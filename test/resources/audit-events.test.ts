import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openAuditStore } from "../../src/audit/open.ts";
import type { AuditEvent, AuditSink } from "../../src/kernel/audit-sink.ts";
import { AuditFailure, CapabilityDenied, InvalidInput, Revoked } from "../../src/kernel/errors.ts";
import { createMint, narrow, revocable, type Capability, type FullReach, type Grant } from "../../src/index.ts";
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
 * Every resource records each access, allowed or denied, before it settles:
 * record, then act. An allowed access's intent is recorded before its first
 * effect and completed with its outcome; a denied one is one event. When
 * the sink cannot take the intent, nothing happens (no file, no request, no
 * row, no process) and the caller gets AuditFailure. One table of accesses
 * drives the same checks over the four resources.
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
/** A root that may also write, change rows and run touch: what the record-then-act tests try to do. */
const writerCap = (): Capability<FullReach> =>
  createMint({
    issuer: "audit-tests",
    policy: () => ({
      fs: [{ path: dir, ops: ["read", "write", "list"] }],
      db: [{ model: "Note", ops: ["read", "create", "update", "delete"], scope: { tenantId: 7 } }],
      exec: [{ program: realpathSync("/usr/bin/touch"), cwd: dir }],
    }),
  }).issue({ id: "alice" });
/** The failure of an access whose intent could not be recorded, not of a denial. */
const UNRECORDED = /could not record the intent of .*, so it was not done: the log is full/;

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
        allowed: (cap) => http.request(cap, `${origin()}/echo`),
        denied: (cap) => http.request(cap, `${origin()}/echo`, { method: "POST", body: "x" }),
        invalid: (cap) => http.request(cap, "ftp://example.com/"),
      };
    },
    allowedRequest: () => ({ action: "http.request", method: "GET", url: `${origin()}/echo` }),
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

  it("records an allowed access's intent before acting, and completes it before it settles", async () => {
    await c.make(sink).allowed(cap);
    expect(sink.intents).toHaveLength(1);
    expect(sink.pending()).toEqual([]);
    const event = only();
    expect(event.id).toBe(sink.intents[0]?.id);
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

  it("does not act when the sink cannot record the intent, and fails with AuditFailure", async () => {
    sink.failWith(new Error("disk full"));
    const failure = await c.make(sink).allowed(cap).then(
      () => null,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(AuditFailure);
    expect((failure as AuditFailure).message).toMatch(/could not record the intent of .*, so it was not done: disk full/);
    expect((failure as AuditFailure).cause).toEqual(new Error("disk full"));
    expect(sink.events).toEqual([]);
  });

  it("withholds the result when only the outcome cannot be recorded; the intent stays in the log", async () => {
    sink.failWith(new Error("disk full"), "complete");
    const failure = await c.make(sink).allowed(cap).then(
      () => null,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(AuditFailure);
    expect((failure as AuditFailure).message).toMatch(/was done and its intent recorded \(event .*\), but its outcome could not be recorded, so its result is withheld: disk full/);
    expect(sink.pending()).toHaveLength(1);
  });

  it("fails a denied access with AuditFailure too, not with the denial", async () => {
    sink.failWith(new Error("disk full"));
    await expect(c.make(sink).denied(cap)).rejects.toThrow(AuditFailure);
    await expect(c.make(sink).denied(cap)).rejects.toThrow(/its error \(ERR_CAPABILITY_DENIED\) is withheld/);
  });

  it("fails closed when the sink throws synchronously", async () => {
    const closed = () => {
      throw new Error("store closed");
    };
    const throwing: AuditSink = { intend: closed, complete: closed, write: closed };
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

  it("a redirect followed is a second request, recorded as its own event under its own URL", async () => {
    const sink = memorySink();
    const http = createHttpClient({ audit: sink });
    await http.request(rootCap(), `${origin()}/redirect?to=/echo`);
    expect(sink.events.map((e) => [e.request, e.decision.allowed, e.outcome.ok])).toEqual([
      [{ action: "http.request", method: "GET", url: `${origin()}/redirect?to=/echo` }, true, true],
      [{ action: "http.request", method: "GET", url: `${origin()}/echo` }, true, true],
    ]);
  });

  it("a redirect to a URL the capability does not grant records that hop's denial, after the first hop's event", async () => {
    const sink = memorySink();
    const http = createHttpClient({ audit: sink });
    const cap = narrow(rootCap(), { http: [{ origin: origin(), methods: ["GET"], pathPrefix: "/redirect", allowPrivateNetwork: true }] });
    await expect(http.request(cap, `${origin()}/redirect?to=/echo`)).rejects.toThrow(CapabilityDenied);
    expect(sink.events).toHaveLength(2);
    expect(sink.events[1]?.request).toMatchObject({ action: "http.request", url: `${origin()}/echo` });
    expect(sink.events[1]?.decision).toMatchObject({ allowed: false, link: 1 });
  });

  it("a capability revoked while its intent is being recorded does not act, and the outcome says why", async () => {
    const sink = memorySink();
    const lease = revocable(writerCap());
    const slow: AuditSink = {
      intend: async (intent) => {
        await sink.intend(intent);
        lease.revoke("revoked while the log was written");
      },
      complete: (c) => sink.complete(c),
      write: (e) => sink.write(e),
    };
    const fsys = createFileSystem({ baseDir: dir, audit: slow });
    await expect(fsys.write(lease.capability, "late.txt", "x")).rejects.toThrow(Revoked);
    expect(existsSync(join(dir, "late.txt"))).toBe(false);
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]).toMatchObject({ decision: { allowed: false, code: "ERR_REVOKED" }, outcome: { ok: false, errorCode: "ERR_REVOKED" } });
  });

  it("a file system refuses an audit option that is not a sink", () => {
    expect(() => createFileSystem({ baseDir: dir, audit: {} as AuditSink })).toThrow(/audit must be an AuditSink/);
  });
});

describe("nothing acts unrecorded", () => {
  const failing = (): MemorySink => {
    const sink = memorySink();
    sink.failWith(new Error("the log is full"));
    return sink;
  };

  it("a file is neither written nor created when its intent cannot be recorded", async () => {
    const fsys = createFileSystem({ baseDir: dir, audit: failing() });
    const cap = writerCap();
    await expect(fsys.write(cap, "unrecorded.txt", "x")).rejects.toThrow(UNRECORDED);
    await expect(fsys.write(cap, "a.txt", "overwritten")).rejects.toThrow(UNRECORDED);
    expect(existsSync(join(dir, "unrecorded.txt"))).toBe(false);
    expect(readFileSync(join(dir, "a.txt"), "utf8")).toBe("hello");
  });

  it("no request reaches the server when its intent cannot be recorded", async () => {
    const http = createHttpClient({ audit: failing() });
    const before = server.servers[0]?.requests.length;
    await expect(http.request(rootCap(), `${origin()}/echo`)).rejects.toThrow(UNRECORDED);
    expect(server.servers[0]?.requests.length).toBe(before);
  });

  it("no row changes when its intent cannot be recorded", async () => {
    const db = createSqlDatabase({ sqlite, schema: SCHEMA, audit: failing() });
    const cap = writerCap();
    await expect(db.create(cap, { model: "Note", values: { id: 3, tenantId: 7, body: "new" } })).rejects.toThrow(UNRECORDED);
    await expect(db.update(cap, { model: "Note", where: { id: 1 }, set: { body: "changed" } })).rejects.toThrow(UNRECORDED);
    await expect(db.delete(cap, { model: "Note", where: { id: 1 } })).rejects.toThrow(UNRECORDED);
    expect(sqlite.prepare("SELECT id, body FROM notes ORDER BY id").all()).toEqual([
      { id: 1, body: "mine" },
      { id: 2, body: "theirs" },
    ]);
  });

  it("no program runs when its intent cannot be recorded", async () => {
    const touch = realpathSync("/usr/bin/touch");
    const exec = createExec({ audit: failing() });
    await expect(exec.run(writerCap(), [touch, join(dir, "ran.txt")], { cwd: dir })).rejects.toThrow(UNRECORDED);
    expect(existsSync(join(dir, "ran.txt"))).toBe(false);
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
      const [tool, resource] = records.map((r) => r.event);
      // Record, then act: the tool's intent, then its resource's, each completed after.
      expect(records.map((r) => [r.seq, r.outcomeSeq, r.event.kind, r.event.request.action, r.event.decision.allowed])).toEqual([
        [1, 4, "tool", "tool.call", true],
        [2, 3, "resource", "fs.read", true],
        [5, 5, "tool", "fs.read", false],
      ]);
      // The resource ran under the handler's capability: the tool's, narrowed to the call's needs.
      expect(resource?.tool).toBe("read_file");
      const toolLineage = tool?.subject.lineage.map((l) => l.id) ?? [];
      expect(resource?.subject.lineage.map((l) => l.id).slice(0, toolLineage.length)).toEqual(toolLineage);
      expect(resource?.subject.mint).toEqual(tool?.subject.mint);
      expect(resource?.outcome).toEqual({ ok: true, resultBytes: 5 });

      const report = await store.verify();
      expect(report).toMatchObject({ ok: true, events: 5, openIntentCount: 0 });
    } finally {
      await store.close();
      rmSync(logDir, { recursive: true, force: true });
    }
  });
});
