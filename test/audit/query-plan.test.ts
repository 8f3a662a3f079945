import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAuditStore } from "../../src/audit/open.ts";
import { buildSelect, parseQuery, type AuditQuery } from "../../src/audit/query.ts";
import type { AuditDb } from "../../src/audit/schema.ts";
import { HOUR, scenario, T0 } from "./fixtures.ts";

/*
 * Every filter is served by an index, so queries stay fast however long the
 * log grows (bench/audit.ts times them over a million events). SQLite's plan
 * without statistics is the one a fresh log gets.
 */
describe("SQLite query plans", () => {
  const dir = mkdtempSync(join(tmpdir(), "agentcap-audit-plan-"));
  const path = join(dir, "audit.db");
  let raw: Database.Database;
  let db: Kysely<AuditDb>;

  beforeAll(async () => {
    const store = await openAuditStore({ kind: "sqlite", path });
    for (const [, event] of scenario().named) await store.write(event);
    await store.close();
    raw = new Database(path);
    raw.exec("DROP TABLE IF EXISTS sqlite_stat1; DROP TABLE IF EXISTS sqlite_stat4;");
    db = new Kysely<AuditDb>({ dialect: new SqliteDialect({ database: raw }) });
  });
  afterAll(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const plan = (query: AuditQuery, linkNum: number | null = null) => {
    const { sql, parameters } = buildSelect(db, parseQuery(query), linkNum).compile();
    return (raw.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...parameters) as { detail: string }[]).map((r) => r.detail).join("\n");
  };

  it.each<[string, AuditQuery, number | null, RegExp]>([
    ["principal and time range", { principal: "alice", since: T0, until: T0 + 24 * HOUR }, null, /audit_events_(principal|at)\b/],
    ["root request", { requestId: "req-bob" }, null, /audit_events_request_id/],
    ["descendants", {}, 1, /SEARCH l USING PRIMARY KEY \(link_num=\?\)/],
    ["capability hash", { capabilityHash: "a".repeat(64) }, null, /audit_events_capability_hash/],
    ["tool", { tool: "search" }, null, /audit_events_tool/],
    ["action", { action: "fs.read" }, null, /audit_events_action/],
    ["resource prefix", { resourcePrefix: "/srv/data/" }, null, /audit_events_resource \(resource>\? AND resource<\?\)/],
    ["denied, newest first", { decision: "denied", order: "desc" }, null, /audit_events_denied_/],
    ["time range", { since: T0, until: T0 + HOUR }, null, /audit_events_at/],
    ["tenant", { tenant: "acme" }, null, /audit_events_tenant/],
    ["session", { sessionId: "sess-1" }, null, /audit_events_session_id/],
    ["task", { taskId: "task-1" }, null, /audit_events_task_id/],
  ])("%s: uses an index, never a full scan", (_name, query, linkNum, index) => {
    const text = plan(query, linkNum);
    expect(text).toMatch(index);
    expect(text).not.toMatch(/SCAN (e|l)\b(?! USING)/);
  });

  it.each<[string, AuditQuery, number | null]>([
    ["descendants", { order: "desc" }, 1],
    ["principal", { principal: "alice" }, null],
    ["tool", { tool: "search", order: "desc" }, null],
    ["action", { action: "fs.read" }, null],
    ["tenant", { tenant: "acme", order: "desc" }, null],
    ["capability hash", { capabilityHash: "a".repeat(64) }, null],
    ["denied", { decision: "denied" }, null],
  ])("%s: reads a page in index order, without sorting every match", (_name, query, linkNum) => {
    expect(plan(query, linkNum)).not.toMatch(/TEMP B-TREE/);
  });
});
