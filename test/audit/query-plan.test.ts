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
    ["principal and time range", { principal: "alice", since: T0, until: T0 + 24 * HOUR }, null, /audit_events_principal_at/],
    ["root request", { requestId: "req-bob" }, null, /audit_events_request_id/],
    ["descendants", {}, 1, /SEARCH l USING PRIMARY KEY \(link_num=\?\)/],
    ["capability hash", { capabilityHash: "a".repeat(64) }, null, /audit_events_capability_hash/],
    ["tool", { tool: "search" }, null, /audit_events_tool_at/],
    ["action", { action: "fs.read" }, null, /audit_events_action_at/],
    ["resource prefix", { resourcePrefix: "/srv/data/" }, null, /audit_events_resource \(resource>\? AND resource<\?\)/],
    ["denied, newest first", { decision: "denied", order: "desc" }, null, /audit_events_denied_/],
    ["time range", { since: T0, until: T0 + HOUR }, null, /audit_events_at/],
    ["tenant", { tenant: "acme" }, null, /audit_events_tenant_at/],
    ["session", { sessionId: "sess-1" }, null, /audit_events_session_id/],
    ["task", { taskId: "task-1" }, null, /audit_events_task_id/],
  ])("%s: uses an index, never a full scan", (_name, query, linkNum, index) => {
    const text = plan(query, linkNum);
    expect(text).toMatch(index);
    expect(text).not.toMatch(/SCAN (e|l)\b(?! USING)/);
  });

  it("reads a lineage page in index order, without sorting", () => {
    expect(plan({ order: "desc" }, 1)).not.toMatch(/TEMP B-TREE/);
  });
});
