import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { describe } from "vitest";
import { openAuditStore } from "../../src/audit/open.ts";
import type { AuditStore } from "../../src/audit/store.ts";
import { auditSubject, type AuditEvent, type AuditIntent } from "../../src/kernel/audit-sink.ts";
import { caretaker } from "../../src/kernel/internal.ts";
import { databaseUrl, describePostgres } from "../support/postgres.ts";
import { check, createManualClock, createMint, narrow, type Capability, type Grant, type Request } from "../../src/index.ts";

/** 2025-01-15 09:00 UTC: the tests' "today". */
export const T0 = Date.UTC(2025, 0, 15, 9);
export const HOUR = 3_600_000;

const rootGrant: Grant = {
  tools: ["search", "fetch_page", "lookup_customer", "run_report"],
  fs: [{ path: "/srv/data", ops: ["read", "list", "write"] }],
  http: [{ origin: "https://api.example.com", methods: ["GET", "POST"] }],
  db: [{ model: "Customer", ops: ["read", "update"] }],
  exec: [{ program: "/usr/bin/curl" }],
};

/**
 * Real capabilities from the kernel: Alice (tenant acme) with a revocable
 * session link labelled { session, task } and a tool capability under it;
 * Bob (two tenants) with a narrowed report capability.
 */
export function world() {
  const clock = createManualClock(T0);
  const mint = createMint({ issuer: "test-app", clock, policy: () => rootGrant });
  const alice = mint.issue({ id: "alice", tenants: ["acme"] }, { requestId: "req-alice" });
  const session = caretaker(narrow(alice, { tools: ["search", "fetch_page"], http: rootGrant.http ?? [], fs: rootGrant.fs ?? [] }), { session: "sess-1", task: "task-1" });
  const searchTool = narrow(session.capability, { tools: ["search"], http: [{ origin: "https://api.example.com", methods: ["GET"], pathPrefix: "/v1/" }] });
  const bob = mint.issue({ id: "bob", tenants: ["globex", "initech"] }, { requestId: "req-bob" });
  const report = narrow(bob, { tools: ["run_report"], db: [{ model: "Customer", ops: ["read"] }], exec: rootGrant.exec ?? [] });
  return { clock, mint, alice, session, searchTool, bob, report };
}

/** An event for `request` made with `cap`, decided by the kernel (without charging). */
export function eventFor(cap: Capability, request: Request, options: { at?: number; tool?: string | null; kind?: "tool" | "resource" } = {}): AuditEvent {
  const decision = check(cap, request);
  return {
    id: randomUUID(),
    at: options.at ?? T0,
    durationMs: 2.5,
    kind: options.kind ?? (request.action === "tool.call" ? "tool" : "resource"),
    tool: options.tool === undefined ? (request.action === "tool.call" ? request.tool : null) : options.tool,
    request,
    decision,
    outcome: decision.allowed ? { ok: true, resultBytes: 128 } : { ok: false, errorCode: decision.code, message: decision.reason },
    subject: auditSubject(cap),
  };
}

/** The intent part of an event: everything but how it ended. */
export function intentOf(event: AuditEvent): AuditIntent {
  return Object.fromEntries(Object.entries(event).filter(([k]) => k !== "durationMs" && k !== "outcome")) as unknown as AuditIntent;
}

/** Eleven named events from Alice (tenant acme, a session with a search tool) and Bob (tenants globex and initech). */
export function scenario() {
  const w = world();
  const named: [string, AuditEvent][] = [
    ["a1", eventFor(w.alice, { action: "tool.call", tool: "search" }, { at: T0 - 26 * HOUR })],
    ["a2", eventFor(w.searchTool, { action: "http.request", method: "GET", url: "https://api.example.com/v1/search?q=hello&token=s3cr3t-t0ken" }, { at: T0 + HOUR, tool: "search" })],
    ["a3", eventFor(w.searchTool, { action: "http.request", method: "GET", url: "https://api.example.com/v2/admin" }, { at: T0 + 2 * HOUR, tool: "search" })],
    ["a4", eventFor(w.session.capability, { action: "fs.read", path: "/srv/data/reports/q3.csv" }, { at: T0 + 3 * HOUR, tool: "fetch_page" })],
    ["a5", eventFor(w.session.capability, { action: "fs.write", path: "/srv/data/out.txt" }, { at: T0 + 4 * HOUR, tool: "fetch_page" })],
    ["a6", eventFor(w.alice, { action: "fs.delete", path: "/srv/data/out.txt" }, { at: T0 + 5 * HOUR })],
  ];
  w.session.revoke("task finished");
  named.push(
    ["a7", eventFor(w.searchTool, { action: "tool.call", tool: "search" }, { at: T0 + 6 * HOUR })],
    ["b1", eventFor(w.report, { action: "db.read", model: "Customer", fields: ["name"], scope: { email: "carol@example.com" }, tenant: "globex" }, { at: T0 + HOUR, tool: "run_report" })],
    ["b2", eventFor(w.report, { action: "db.update", model: "Customer", fields: ["name"], scope: { id: 7 }, tenant: "initech" }, { at: T0 + 2 * HOUR, tool: "run_report" })],
    [
      "b3",
      eventFor(
        w.report,
        { action: "exec", argv: ["/usr/bin/curl", "-H", "Authorization: Bearer xyz-very-secret", "https://x.test/a?k=v4lue"], cwd: "/tmp", tenant: "globex" },
        { at: T0 + 3 * HOUR, tool: "run_report" },
      ),
    ],
    ["b4", eventFor(w.bob, { action: "tool.call", tool: "run_report", tenant: "initech" }, { at: T0 + 25 * HOUR })],
  );
  return { w, named };
}

/** A query-able value for a SQL row. */
export type Row = Record<string, unknown>;

/** One store engine, as the shared suites see it. */
export interface StoreKit {
  readonly name: "sqlite" | "postgres";
  /** Opens a fresh, empty log (each call a new one), or the current one again with `{ again: true }`. */
  open(options?: Record<string, unknown> & { again?: boolean }): Promise<AuditStore>;
  /** Raw SQL against the current log, from a separate connection (as an attacker or another process would). `?` placeholders. */
  raw(text: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Drops the append-only triggers, as an attacker with database access would. */
  unlock(): Promise<void>;
  cleanup(): Promise<void>;
}

function sqliteKit(): StoreKit {
  const dir = mkdtempSync(join(tmpdir(), "agentcap-audit-"));
  let path = "";
  let n = 0;
  let conn: Database.Database | null = null;
  const stores: AuditStore[] = [];
  return {
    name: "sqlite",
    async open(options = {}) {
      const { again, ...rest } = options;
      if (again !== true) {
        conn?.close();
        conn = null;
        path = join(dir, `audit-${String(++n)}.db`);
      }
      const store = await openAuditStore({ kind: "sqlite", path, ...rest });
      stores.push(store);
      return store;
    },
    // Async like the Postgres kit's, so a refused statement rejects rather than throws.
    async raw(text, params = []) {
      await Promise.resolve();
      conn ??= new Database(path);
      const stmt = conn.prepare(text);
      if (stmt.reader) return stmt.all(...params) as Row[];
      stmt.run(...params);
      return [];
    },
    async unlock() {
      for (const t of ["audit_events", "audit_links", "audit_event_links", "audit_tree"]) {
        await this.raw(`DROP TRIGGER IF EXISTS ${t}_no_update`);
        await this.raw(`DROP TRIGGER IF EXISTS ${t}_no_delete`);
      }
    },
    async cleanup() {
      for (const s of stores) await s.close();
      conn?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresKit(url: string): StoreKit {
  const prefix = `agentcap_test_${String(process.pid)}_${randomUUID().slice(0, 8)}`;
  const schemas: string[] = [];
  const client = new pg.Client({ connectionString: url });
  let connected: Promise<unknown> | null = null;
  const stores: AuditStore[] = [];
  const current = () => schemas.at(-1) ?? "";
  const toDollar = (text: string) => {
    let i = 0;
    return text.replace(/\?/g, () => `$${String(++i)}`);
  };
  return {
    name: "postgres",
    async open(options = {}) {
      const { again, ...rest } = options;
      if (again !== true) schemas.push(`${prefix}_${String(schemas.length + 1)}`);
      const store = await openAuditStore({ kind: "postgres", url, schema: current(), ...rest });
      stores.push(store);
      return store;
    },
    async raw(text, params = []) {
      connected ??= client.connect();
      await connected;
      await client.query(`SET search_path TO ${current()}`);
      const result = await client.query(toDollar(text), [...params]);
      return result.rows as Row[];
    },
    async unlock() {
      for (const t of ["audit_events", "audit_links", "audit_event_links", "audit_tree"]) await this.raw(`DROP TRIGGER IF EXISTS ${t}_append_only ON ${t}`);
    },
    async cleanup() {
      for (const s of stores) await s.close();
      connected ??= client.connect();
      await connected;
      for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
      await client.end();
    },
  };
}

/** An engine the shared suites run against, and how to make a store on it. */
export interface Kit {
  readonly name: string;
  readonly make: () => StoreKit;
}

/**
 * Declares `body` once per engine, as "<engine> <title>": SQLite always,
 * Postgres through the one Postgres gate (reported as skipped without a database).
 */
export function eachKit(title: string, body: (kit: Kit) => void): void {
  describe(`sqlite ${title}`, () => {
    body({ name: "sqlite", make: sqliteKit });
  });
  describePostgres(`postgres ${title}`, () => {
    body({ name: "postgres", make: () => postgresKit(databaseUrl ?? "") });
  });
}
