import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { BudgetExhausted, CapabilityDenied, createManualClock, Expired, narrow, narrowToRow, restrict, revocable, Revoked } from "../../src/index.ts";
import { createSqlDatabase, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { ReadQuery } from "../../src/resources/sql/query.ts";
import { memorySink } from "../tools/memory-sink.ts";
import { capabilities, ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * A repeated read reuses its parsed shape, its plan and prepared request for
 * the capability, and its statement. None of that may carry a decision over:
 * each call is decided again (a revoked, expired or used-up capability is
 * refused with the same shape cached, and runs no SQL), a different
 * capability asking the same query gets its own decision, and every call is
 * still audited as its own event.
 */

const ROW7: ReadQuery = { model: "Customer", fields: ["id", "name", "email"], where: { id: 7 }, limit: 1 };
const GRACE = [{ id: 7, name: "Grace", email: "grace@example.com" }];

for (const engine of ENGINES) {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? `cached reads on ${engine.name}`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await engine.open();
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(async () => {
      await h.reset();
    });

    /** `read`, and on SQLite `readSync` too: both paths share the caches. */
    const reads = (db: SqlDatabase) =>
      engine.name === "sqlite"
        ? [(cap: Parameters<SqlDatabase["read"]>[0], q: ReadQuery) => db.read(cap, q), async (cap: Parameters<SqlDatabase["read"]>[0], q: ReadQuery) => Promise.resolve().then(() => db.readSync(cap, q))]
        : [(cap: Parameters<SqlDatabase["read"]>[0], q: ReadQuery) => db.read(cap, q)];

    it("a repeated read prepares nothing again, runs its statement each time, and is audited once per call", async () => {
      const { agent } = capabilities();
      const sink = memorySink();
      const db = createSqlDatabase({ schema: SCHEMA, ...h.connection, audit: sink });
      await expect(db.read(agent, ROW7)).resolves.toEqual(GRACE);
      h.clearCounts();
      const before = sink.events.length;
      for (let i = 0; i < 5; i++) await expect(db.read(agent, { ...ROW7, where: { id: 7 } })).resolves.toEqual(GRACE);
      // SQLite counts statements prepared anew; Postgres the statement names used, one name for all five.
      expect(h.prepared()).toBe(engine.name === "sqlite" ? 0 : 1);
      expect(h.executed()).toBe(5);
      const events = sink.events.slice(before);
      expect(events).toHaveLength(5);
      for (const e of events) {
        expect(e.decision.allowed).toBe(true);
        expect(e.request).toEqual(sink.events[0]?.request);
      }
      expect(new Set(events.map((e) => e.id)).size).toBe(5);
    });

    it("a capability revoked after a cached read is refused, and runs no SQL", async () => {
      const { agent } = capabilities();
      const db = createSqlDatabase({ schema: SCHEMA, ...h.connection });
      for (const read of reads(db)) {
        const r = revocable(agent);
        await expect(read(r.capability, ROW7)).resolves.toEqual(GRACE);
        r.revoke("done");
        h.clearCounts();
        await expect(read(r.capability, ROW7)).rejects.toThrow(Revoked);
        expect(h.executed()).toBe(0);
        // The capability it was made from is untouched.
        await expect(read(agent, ROW7)).resolves.toEqual(GRACE);
      }
    });

    it("a capability that expired after a cached read is refused, and runs no SQL", async () => {
      const clock = createManualClock(0);
      const { agent } = capabilities(clock);
      const db = createSqlDatabase({ schema: SCHEMA, ...h.connection });
      for (const read of reads(db)) {
        const brief = restrict(agent, { expiresAt: clock.now() + 1000 });
        await expect(read(brief, ROW7)).resolves.toEqual(GRACE);
        clock.advance(2000);
        h.clearCounts();
        await expect(read(brief, ROW7)).rejects.toThrow(Expired);
        expect(h.executed()).toBe(0);
      }
    });

    it("a single-use capability reads once, though its read is cached", async () => {
      const { agent } = capabilities();
      const db = createSqlDatabase({ schema: SCHEMA, ...h.connection });
      for (const read of reads(db)) {
        const once = restrict(agent, { maxUses: 1 });
        await expect(read(once, ROW7)).resolves.toEqual(GRACE);
        h.clearCounts();
        await expect(read(once, ROW7)).rejects.toThrow(BudgetExhausted);
        expect(h.executed()).toBe(0);
      }
    });

    it("a narrower capability asking a query cached for a wider one gets its own decision, and the wider one keeps its own", async () => {
      const { agent } = capabilities();
      const db = createSqlDatabase({ schema: SCHEMA, ...h.connection });
      const noEmail = narrow(agent, { db: [{ model: "Customer", ops: ["read"], fields: ["id", "name"] }] });
      const otherRow = narrowToRow(agent, { model: "Customer", id: 1 });
      for (const read of reads(db)) {
        await expect(read(agent, ROW7)).resolves.toEqual(GRACE);
        h.clearCounts();
        await expect(read(noEmail, ROW7)).rejects.toThrow(CapabilityDenied);
        await expect(read(noEmail, ROW7)).rejects.toThrow(/email/);
        await expect(read(otherRow, ROW7)).rejects.toThrow(CapabilityDenied);
        expect(h.executed()).toBe(0);
        await expect(read(agent, ROW7)).resolves.toEqual(GRACE);
        await expect(read(otherRow, { ...ROW7, where: { id: 1 } })).resolves.toEqual([{ id: 1, name: "Ada", email: "ada@example.com" }]);
      }
    });
  });
}
