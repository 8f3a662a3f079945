import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CapabilityDenied, createManualClock, createMint, narrow, type Capability, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { CreateQuery, ReadQuery, UpdateQuery } from "../../src/resources/sql/query.ts";
import { ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * A link that grants a model by several rules: a call allowed by any one of
 * them is allowed, and confined by the one that allows it (its scope, row
 * rule and fields), never by the first rule only. On both engines.
 */

const O = "Order";
const root = (grant: Grant) => createMint({ issuer: "choice", clock: createManualClock(0), policy: () => grant }).issue({ id: "p" });
/** Tenant 42's orders are 10 (customer 1, open) and 11 (customer 7, paid); tenant 43's is 12 (customer 4, open). */
const TWO_TENANTS: Grant = {
  db: [
    { model: O, ops: ["read", "create", "update"], scope: { tenantId: 42 } },
    { model: O, ops: ["read", "create", "update"], scope: { tenantId: 43 } },
  ],
};

const api = (db: SqlDatabase) => ({
  read: (cap: Capability, q: unknown) => db.read(cap as DbCapability<"read">, q as ReadQuery),
  create: (cap: Capability, q: unknown) => db.create(cap as DbCapability<"create">, q as CreateQuery),
  update: (cap: Capability, q: unknown) => db.update(cap as DbCapability<"update">, q as UpdateQuery),
});
const ids = (rows: readonly Record<string, unknown>[]) => rows.map((r) => r.id);

describe.each(ENGINES)("rule choice on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "a call is confined by the rule that allows it", () => {
    let h: Harness;
    let db: ReturnType<typeof api>;

    beforeAll(async () => {
      h = await engine.open();
      db = api(createSqlDatabase({ schema: SCHEMA, ...h.connection }));
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(async () => {
      await h.reset();
      h.clearCounts();
    });

    it("reads in the scope of the rule its filter names, the same shape alternating between them", async () => {
      const cap = root(TWO_TENANTS);
      for (let i = 0; i < 2; i++) {
        expect(ids(await db.read(cap, { model: O, fields: ["id"], where: { tenantId: 43 } }))).toEqual([12]);
        expect(ids(await db.read(cap, { model: O, fields: ["id"], where: { tenantId: 42 }, orderBy: [{ field: "id" }] }))).toEqual([10, 11]);
      }
      // Without a filter naming one, the first rule's scope applies.
      expect(ids(await db.read(cap, { model: O, fields: ["id"], orderBy: [{ field: "id" }] }))).toEqual([10, 11]);
      h.clearCounts();
      await expect(db.read(cap, { model: O, fields: ["id"], where: { tenantId: 44 } })).rejects.toThrow(CapabilityDenied);
      expect(h.executed()).toBe(0);
    });

    it("follows a narrower link that keeps only the second rule (it was refused by the first)", async () => {
      const child = narrow(root(TWO_TENANTS), { db: [{ model: O, ops: ["read"], scope: { tenantId: 43 } }] });
      expect(ids(await db.read(child, { model: O, fields: ["id"] }))).toEqual([12]);
      await expect(db.read(child, { model: O, fields: ["id"], where: { tenantId: 42 } })).rejects.toThrow(/confines Order to rows where tenantId = 43/);
    });

    it("creates and updates in the scope of the rule the values name", async () => {
      const cap = root(TWO_TENANTS);
      await expect(db.create(cap, { model: O, values: { tenantId: 43, customerId: 4, total: 1, status: "new" } })).resolves.toMatchObject({ count: 1 });
      expect((await h.rows("orders")).filter((r) => r.status === "new").map((r) => r.tenant_id)).toEqual([43]);
      expect(await db.update(cap, { model: O, set: { total: 2 }, where: { tenantId: 43, id: 12 } })).toMatchObject({ count: 1 });
      expect((await h.rows("orders")).find((r) => r.id === 12)?.total).toBe(2);
      // The rows an update leaves are checked too: moving a row between tenants takes a capability that holds both.
      const only43 = narrow(cap, { db: [{ model: O, ops: ["update"], scope: { tenantId: 43 } }] });
      await expect(db.update(only43, { model: O, set: { tenantId: 42 }, where: { tenantId: 43 } })).rejects.toThrow(/confines Order to rows where tenantId = 43/);
      expect(await db.update(cap, { model: O, set: { tenantId: 42 }, where: { id: 12, tenantId: 43 } })).toMatchObject({ count: 1 });
      await expect(db.create(cap, { model: O, values: { tenantId: 44, customerId: 4, total: 1, status: "x" } })).rejects.toThrow(CapabilityDenied);
    });

    it("chooses by row rule and by fields, each rule confining what it allows", async () => {
      const cap = root({
        db: [
          { model: O, ops: ["read"], fields: ["id", "status", "customerId"], scope: { tenantId: 42 }, rows: { field: "status", op: "eq", value: "paid" } },
          { model: O, ops: ["read"], fields: ["id", "status", "customerId", "total"], scope: { tenantId: 42 }, rows: { field: "customerId", op: "eq", value: 1 } },
        ],
      });
      expect(ids(await db.read(cap, { model: O, fields: ["id"] }))).toEqual([11]);
      // Order 10 is open: only the second rule allows it, and its filter says so.
      expect(await db.read(cap, { model: O, fields: ["id", "status"], where: { customerId: 1 } })).toEqual([{ id: 10, status: "open" }]);
      // total is the second rule's field only: the read is confined by that rule's row rule.
      expect(await db.read(cap, { model: O, fields: ["id", "total"] })).toEqual([{ id: 10, total: 9.5 }]);
      // Both rules' filters at once satisfy neither: refused, not widened.
      await expect(db.read(cap, { model: O, fields: ["id", "total"], where: { status: "paid" } })).resolves.toEqual([]);
    });

    it("property: a read sees exactly the rows of one rule that allows it: of its filter's tenant, and without a row rule when there is one", async () => {
      const statuses = ["open", "paid"] as const;
      const rule = fc.record({ tenant: fc.constantFrom(42, 43), status: fc.constantFrom<string | null>(null, ...statuses) });
      await fc.assert(
        fc.asyncProperty(fc.array(rule, { minLength: 1, maxLength: 3 }), fc.constantFrom<number | null>(null, 42, 43), async (rules, pinned) => {
          const cap = root({
            db: rules.map((r) => ({ model: O, ops: ["read"], scope: { tenantId: r.tenant }, ...(r.status === null ? {} : { rows: { field: "status", op: "eq", value: r.status } }) })),
          });
          const all = await h.rows("orders");
          const allows = (r: (typeof rules)[number], row: Record<string, unknown>) => row.tenant_id === r.tenant && (r.status === null || row.status === r.status);
          const got = await db
            .read(cap, { model: O, fields: ["id"], ...(pinned === null ? {} : { where: { tenantId: pinned } }), orderBy: [{ field: "id" }] })
            .then(ids, (e: unknown) => e);
          const fitting = rules.filter((r) => pinned === null || r.tenant === pinned);
          if (fitting.length === 0) {
            expect(got).toBeInstanceOf(CapabilityDenied);
            return;
          }
          // A rule without a row rule costs the read nothing, so it is preferred; then the first.
          const first = (fitting.find((r) => r.status === null) ?? fitting[0]) as (typeof rules)[number];
          expect(got).toEqual(all.filter((row) => allows(first, row)).map((r) => r.id));
        }),
        { numRuns: 40 },
      );
    });
  });
});
