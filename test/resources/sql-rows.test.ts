import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { authorize, CapabilityDenied, createManualClock, createMint, InvalidInput, narrow, parseGrant, type Capability, type RowRule } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { CreateQuery, DeleteQuery, ReadQuery, UpdateQuery } from "../../src/resources/sql/query.ts";
import { ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * Row rules: a db rule confines its model to rows satisfying a condition in
 * the structured filter language; every link's rule applies (AND), reads,
 * updates and deletes see only such rows, a create must make one, and an
 * update cannot change a field a rule names. On both engines.
 */

const O = "Order";
/** Tenant 42's orders are 10 (customer 1, open, 9.5) and 11 (customer 7, paid, 20); tenant 43's is 12. */
const NOT_OPEN_OR_CUSTOMER_7: RowRule = { any: [{ field: "status", op: "ne", value: "open" }, { field: "customerId", op: "eq", value: 7 }] };

function world(rows: RowRule = NOT_OPEN_OR_CUSTOMER_7) {
  const mint = createMint({
    issuer: "rows",
    clock: createManualClock(0),
    policy: () => ({ db: [{ model: O, ops: ["read", "create", "update", "delete"], scope: { tenantId: 42 }, rows }] }),
  });
  return { agent: mint.issue({ id: "agent" }) };
}

const api = (db: SqlDatabase) => ({
  read: (cap: Capability, q: unknown) => db.read(cap as DbCapability<"read">, q as ReadQuery),
  create: (cap: Capability, q: unknown) => db.create(cap as DbCapability<"create">, q as CreateQuery),
  update: (cap: Capability, q: unknown) => db.update(cap as DbCapability<"update">, q as UpdateQuery),
  delete: (cap: Capability, q: unknown) => db.delete(cap as DbCapability<"delete">, q as DeleteQuery),
});
type Api = ReturnType<typeof api>;

describe("row rules in grants", () => {
  it("are validated: one value for a comparison, a list for in, no null in order comparisons, bounded nesting", () => {
    const rule = (rows: unknown) => () => parseGrant({ db: [{ model: O, ops: ["read"], rows }] });
    expect(rule({ field: "status", op: "in", value: "open" })).toThrow(/in takes a list/);
    expect(rule({ field: "status", op: "eq", value: ["open"] })).toThrow(/takes one value/);
    expect(rule({ field: "total", op: "lt", value: null })).toThrow(/cannot compare with null/);
    expect(rule({ field: "status", op: "startsWith", value: 1 })).toThrow(/takes a string/);
    expect(rule({ field: "status", op: "like", value: "%" })).toThrow(InvalidInput);
    expect(rule({ field: "status", op: "eq", value: "x", sql: "1=1" })).toThrow(InvalidInput);
    expect(rule({ all: [] })).toThrow(InvalidInput);
    let deep: RowRule = { field: "id", op: "eq", value: 1 };
    for (let i = 0; i < 9; i++) deep = { not: deep };
    expect(rule(deep)).toThrow(/nests 10 deep/);
    expect(rule({ all: [{ field: "id", op: "eq", value: 1 }, { not: { field: "status", op: "in", value: ["a", "b"] } }] })()).toBeTruthy();
  });

  it("the kernel refuses a request that does not name a link's rule, by canonical text", () => {
    const { agent } = world();
    const base = { action: "db.read", model: O, fields: ["id"], scope: { tenantId: 42 } } as const;
    const refused = authorize(agent, base);
    expect(refused.allowed ? "" : refused.reason).toMatch(/confines Order to rows where status != "open" or customerId = 7/);
    expect(authorize(agent, { ...base, rows: [NOT_OPEN_OR_CUSTOMER_7] }).allowed).toBe(true);
    // The same rule with its keys in another order is the same rule; a different value is not.
    expect(authorize(agent, { ...base, rows: [{ any: [{ value: "open", op: "ne", field: "status" }, { op: "eq", value: 7, field: "customerId" }] }] }).allowed).toBe(true);
    expect(authorize(agent, { ...base, rows: [{ any: [{ field: "status", op: "ne", value: "open" }, { field: "customerId", op: "eq", value: 4 }] }] }).allowed).toBe(false);
  });
});

describe.each(ENGINES)("row rules on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "confine every operation, ANDed across links", () => {
    let h: Harness;
    let db: Api;

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

    const ids = (rows: readonly Record<string, unknown>[]) => rows.map((r) => r.id);

    it("reads only rows the rule allows, whatever the filter asks", async () => {
      const { agent } = world();
      expect(ids(await db.read(agent, { model: O, fields: ["id"], orderBy: [{ field: "id" }] }))).toEqual([11]);
      expect(await db.read(agent, { model: O, fields: ["id"], where: { id: 10 } })).toEqual([]);
      expect(await db.read(agent, { model: O, fields: ["id"], where: { status: "open" } })).toEqual([]);
    });

    it("ANDs the rules of every link, so a narrower link can only see fewer rows", async () => {
      const { agent } = world();
      const big = narrow(agent, { db: [{ model: O, ops: ["read"], rows: { field: "total", op: "gt", value: 15 } }] });
      expect(ids(await db.read(big, { model: O, fields: ["id"] }))).toEqual([11]);
      const small = narrow(agent, { db: [{ model: O, ops: ["read"], rows: { field: "total", op: "lt", value: 15 } }] });
      expect(await db.read(small, { model: O, fields: ["id"] })).toEqual([]);
      // A link that asks for the open orders still sees only what the root allows of them: none.
      const open = narrow(agent, { db: [{ model: O, ops: ["read"], rows: { field: "status", op: "eq", value: "open" } }] });
      expect(await db.read(open, { model: O, fields: ["id"] })).toEqual([]);
    });

    it("updates and deletes only rows the rule allows", async () => {
      const { agent } = world();
      expect(await db.update(agent, { model: O, set: { total: 1 }, where: {} })).toMatchObject({ count: 1 });
      expect(await db.delete(agent, { model: O, where: { id: { in: [10, 11, 12] } } })).toMatchObject({ count: 1 });
      expect((await h.rows("orders")).map((r) => [r.id, r.total])).toEqual([
        [10, 9.5],
        [12, 15],
      ]);
    });

    it("refuses an update that changes a field a rule names, before any SQL runs", async () => {
      const { agent } = world();
      const err = await db.update(agent, { model: O, set: { status: "open" }, where: { id: 11 } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CapabilityDenied);
      expect((err as Error).message).toMatch(/row rule on status, which an update may not change/);
      expect(h.executed()).toBe(0);
    });

    it("creates only rows that satisfy the rule, with every field it names given", async () => {
      const { agent } = world();
      await expect(db.create(agent, { model: O, values: { customerId: 7, total: 1, status: "open" } })).resolves.toMatchObject({ count: 1 });
      await expect(db.create(agent, { model: O, values: { customerId: 1, total: 1, status: "paid" } })).resolves.toMatchObject({ count: 1 });
      h.clearCounts();
      const refused = await db.create(agent, { model: O, values: { customerId: 1, total: 1, status: "open" } }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(CapabilityDenied);
      expect((refused as Error).message).toMatch(/the new row is not one/);
      expect(h.executed()).toBe(0);
    });

    it("refuses a create under a rule ordering a text field (the database's collation decides it), and still filters reads by it", async () => {
      const { agent } = world({ field: "status", op: "gt", value: "o" });
      // Both engines compare text by their own collation; "open" and "paid" sort after "o" in every one.
      expect(ids(await db.read(agent, { model: O, fields: ["id"], orderBy: [{ field: "id" }] }))).toEqual([10, 11]);
      h.clearCounts();
      for (const status of ["zzz", "Open", "a"]) {
        const err = await db.create(agent, { model: O, values: { customerId: 1, total: 1, status } }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(CapabilityDenied);
        expect((err as Error).message).toMatch(/row rule ordering the text field status .* depends on the database's collation.* must use eq, ne, in, startsWith or contains/);
      }
      expect(h.executed()).toBe(0);
      // An order comparison on a number is checked here, as before.
      const { agent: numeric } = world({ field: "total", op: "gt", value: 5 });
      await expect(db.create(numeric, { model: O, values: { customerId: 1, total: 6, status: "open" } })).resolves.toMatchObject({ count: 1 });
      await expect(db.create(numeric, { model: O, values: { customerId: 1, total: 4, status: "open" } })).rejects.toThrow(/the new row is not one/);
    });

    it("refuses, without SQL, a rule the schema cannot express", async () => {
      const { agent } = world({ field: "region", op: "eq", value: "eu" });
      const err = await db.read(agent, { model: O, fields: ["id"] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CapabilityDenied);
      expect((err as Error).message).toMatch(/cannot be enforced: Order has no field region/);
      const typed = await db.read(world({ field: "total", op: "eq", value: "lots" }).agent, { model: O, fields: ["id"] }).catch((e: unknown) => e);
      expect((typed as Error).message).toMatch(/cannot be enforced: total must be a finite number/);
      expect(h.executed()).toBe(0);
    });

    it("property: no read, update or delete through a ruled chain reaches a row outside every link's rule", async () => {
      const rules: RowRule[] = [
        { field: "total", op: "gte", value: 10 },
        { field: "status", op: "in", value: ["paid", "void"] },
        { not: { field: "customerId", op: "eq", value: 1 } },
        { any: [{ field: "status", op: "startsWith", value: "pa" }, { field: "total", op: "lt", value: 5 }] },
      ];
      const holds = (rule: RowRule, row: Record<string, unknown>): boolean => {
        if ("not" in rule) return !holds(rule.not, row);
        if ("any" in rule) return rule.any.some((r) => holds(r, row));
        if ("all" in rule) return rule.all.every((r) => holds(r, row));
        const column = ({ customerId: "customer_id", tenantId: "tenant_id" } as Record<string, string>)[rule.field] ?? rule.field;
        const v = row[column] as string | number;
        const w = rule.value as string | number;
        switch (rule.op) {
          case "gte":
            return v >= w;
          case "lt":
            return v < w;
          case "eq":
            return v === w;
          case "in":
            return (rule.value as unknown[]).includes(v);
          case "startsWith":
            return String(v).startsWith(String(w));
          default:
            throw new Error(`no model of ${rule.op}`);
        }
      };
      await fc.assert(
        fc.asyncProperty(fc.subarray(rules, { minLength: 1, maxLength: 3 }), fc.constantFrom("read", "update", "delete"), async (chosen, op) => {
          await h.reset();
          const [first, ...rest] = chosen as [RowRule, ...RowRule[]];
          let cap: Capability = world(first).agent;
          for (const r of rest) cap = narrow(cap, { db: [{ model: O, ops: ["read", "update", "delete"], rows: r }] });
          const before = await h.rows("orders");
          const allowed = before.filter((row) => row.tenant_id === 42 && chosen.every((r) => holds(r, row)));
          if (op === "read") {
            expect(ids(await db.read(cap, { model: O, fields: ["id"], orderBy: [{ field: "id" }] }))).toEqual(ids(allowed));
            return;
          }
          if (op === "update") await db.update(cap, { model: O, set: { tenantId: 42 }, where: {}, returning: ["id"] });
          else await db.delete(cap, { model: O, where: {} });
          const after = await h.rows("orders");
          const untouched = before.filter((row) => !allowed.includes(row));
          for (const row of untouched) expect(after).toContainEqual(row);
        }),
        { numRuns: 25 },
      );
    });
  
    it("a grant's maxRows bounds every call, the least of the chain's applying", async () => {
      const root = createMint({ issuer: "rows", policy: () => ({ db: [{ model: "Customer", ops: ["read", "delete"], scope: { tenantId: 42 }, maxRows: 2 }] }) }).issue({ id: "a" });
      const wider = narrow(root, { db: [{ model: "Customer", ops: ["read", "delete"], maxRows: 50 }] });
      for (const cap of [root, wider]) {
        await expect(db.read(cap, { model: "Customer", fields: ["id"] })).rejects.toThrow(/more than 2 Customer rows match/);
        await expect(db.read(cap, { model: "Customer", fields: ["id"], limit: 2 })).resolves.toHaveLength(2);
        const over = await db.read(cap, { model: "Customer", fields: ["id"], limit: 3 }).catch((e: unknown) => e);
        expect(over).toBeInstanceOf(CapabilityDenied);
        expect((over as Error).message).toMatch(/at most 2 Customer rows, not 3/);
      }
      const before = await h.rows("customers");
      // The refusal names the limit that applied: the capability's maxRows, not the resource's maxWriteRows.
      const tooMany = await db.delete(wider, { model: "Customer", where: {} }).catch((e: unknown) => e);
      expect(tooMany).toMatchObject({ name: "LimitExceeded", limit: "maxRows" });
      expect((tooMany as Error).message).toMatch(/would affect 4 rows; one call may change at most 2 \(the capability's maxRows\); nothing was changed/);
      expect(await h.rows("customers")).toEqual(before);
      await expect(db.delete(wider, { model: "Customer", where: { id: { in: [1, 2] } } })).resolves.toMatchObject({ count: 2 });
      const refused = authorize(root, { action: "db.read", model: "Customer", fields: ["id"], scope: { tenantId: 42 } });
      expect(refused.allowed ? "" : refused.reason).toMatch(/at most 2 Customer rows, and the request names no limit/);
    });
  });
});
