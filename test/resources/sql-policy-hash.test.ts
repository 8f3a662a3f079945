import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAuditStore } from "../../src/audit/open.ts";
import { createManualClock, createMint, eventSink, narrow, restrict, type AuditEvent, type Capability, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase, type SqlDatabaseOptions } from "../../src/resources/sql/database.ts";
import type { ReadQuery } from "../../src/resources/sql/query.ts";
import { AGENT_GRANT, ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * Every database event names the policy it was decided under: a hash of the
 * chain's grants and conditions and the resource's schema and limits, the
 * same for capabilities minted by the same policy, another when any of them
 * changes. Allowed, denied and failed calls alike; on both engines, and
 * through the audit store.
 */

const READ: ReadQuery = { model: "Customer", fields: ["id"], where: { id: 1 } };

function mintFor(grant: Grant = AGENT_GRANT) {
  return createMint({ issuer: "policy-hash", clock: createManualClock(0), policy: () => grant });
}

describe.each(ENGINES)("policy hash on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "in every database event", () => {
    let h: Harness;
    const events: AuditEvent[] = [];
    const open = (extra: Partial<SqlDatabaseOptions> = {}): SqlDatabase =>
      createSqlDatabase({ schema: SCHEMA, ...h.connection, audit: eventSink((e) => void events.push(e)), ...extra });
    const hashOf = async (db: SqlDatabase, cap: Capability, q: ReadQuery = READ) => {
      events.length = 0;
      await db.read(cap as DbCapability<"read">, q).catch(() => undefined);
      expect(events).toHaveLength(1);
      return events[0]?.subject.policyHash;
    };

    beforeAll(async () => {
      h = await engine.open();
      await h.reset();
    });
    afterAll(async () => {
      await h.close();
    });

    it("is the same for the same policy and differs when a grant, a condition, the schema or a limit changes", async () => {
      const db = open();
      const mint = mintFor();
      const a = mint.issue({ id: "ada" });
      const hash = await hashOf(db, a);
      expect(hash).toMatch(/^[0-9a-f]{64}$/);
      // Another principal under the same policy, and a denied or failing call: the same policy decided.
      expect(await hashOf(db, mint.issue({ id: "bob" }))).toBe(hash);
      expect(await hashOf(db, a, { model: "Customer", fields: ["secretNote"] })).toBe(hash);
      expect(await hashOf(open(), a)).toBe(hash);
      const others = [
        await hashOf(db, mintFor({ db: [...AGENT_GRANT.db, { model: "Order", ops: ["delete"] }] }).issue({ id: "ada" })),
        await hashOf(db, narrow(a, { db: [{ model: "Customer", ops: ["read"] }] })),
        await hashOf(db, restrict(a, { maxUses: 5 })),
        await hashOf(open({ limits: { maxRows: 5 } }), a),
        await hashOf(open({ schema: { ...SCHEMA, Extra: { table: "extra", primaryKey: "id", fields: { id: { type: "integer" } } } } }), a),
      ];
      expect(new Set([hash, ...others]).size).toBe(others.length + 1);
    });

    it("is kept by the audit store and comes back from its queries", async () => {
      const dir = mkdtempSync(join(tmpdir(), "agentcap-policy-hash-"));
      const store = await openAuditStore({ kind: "sqlite", path: join(dir, "audit.db") });
      try {
        const a = mintFor().issue({ id: "ada" });
        const db = createSqlDatabase({ schema: SCHEMA, ...h.connection, audit: store });
        const expected = await hashOf(open(), a);
        await db.read(a, READ);
        await db.create(a as DbCapability<"create">, { model: "Customer", values: { id: 99, name: "Zed", vip: false } }).catch(() => undefined);
        const records = await store.query({});
        expect(records.map((r) => r.event.subject.policyHash)).toEqual([expected, expected]);
        expect(await store.verify()).toMatchObject({ ok: true });
      } finally {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
