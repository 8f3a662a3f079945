import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { CapabilityDenied, narrow, narrowToRow, type Scalar } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { ReadQuery } from "../../src/resources/sql/query.ts";
import { capabilities, ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * A read that filters a row-scope field by the very value the scope requires
 * (a capability narrowed to one row, asked for that row) runs its statement
 * without that filter, which would only repeat the scope's own term. Any
 * other value runs the statement with every filter. Whichever statement
 * runs, a read must return exactly the rows that both its scope and its
 * filters select, and be refused only when it pins a scope field to
 * another value.
 */

type Filter = Scalar | Readonly<Record<string, Scalar | readonly Scalar[]>>;

/** A capability with the row scope it confines Customer reads to. */
interface Scoped {
  readonly name: string;
  readonly cap: DbCapability<"read">;
  readonly scope: Readonly<Record<string, Scalar>>;
}

function scopedCapabilities(): Scoped[] {
  const { agent, customer7 } = capabilities();
  const fields = ["id", "tenantId", "name", "email", "vip"];
  return [
    { name: "tenant 42", cap: agent, scope: { tenantId: 42 } },
    { name: "row 7", cap: customer7, scope: { tenantId: 42, id: 7 } },
    { name: "row 0 (no such row)", cap: narrowToRow(agent, { model: "Customer", id: 0 }), scope: { tenantId: 42, id: 0 } },
    { name: "tenant 42's vips", cap: narrow(agent, { db: [{ model: "Customer", ops: ["read"], fields, scope: { vip: true } }] }), scope: { tenantId: 42, vip: true } },
  ];
}

const filters: Readonly<Record<string, fc.Arbitrary<Filter>>> = {
  id: fc.constantFrom<Filter>(7, 1, 4, 0, -0, { eq: 7 }, { in: [1, 7] }, { eq: 7, lt: 10 }, { gt: 2 }, { in: [3, 2, 1], eq: 0 }),
  tenantId: fc.constantFrom<Filter>(42, 43, { eq: 42 }, { ne: 43 }, { in: [42, 43] }),
  vip: fc.constantFrom<Filter>(true, false, { ne: false }),
  name: fc.constantFrom<Filter>("Grace", "Ada", { ne: "Bob" }, { in: ["Ada", "Grace", "Dan"] }),
};
const where = fc.record(filters, { requiredKeys: [] });

type Stored = Readonly<Record<string, unknown>>;

/** A stored column's value as the schema reads it: SQLite stores booleans as 1 and 0. */
function fieldValue(row: Stored, field: string): unknown {
  if (field === "tenantId") return row.tenant_id;
  if (field === "vip") return Boolean(row.vip);
  return row[field];
}

function passes(value: unknown, filter: Filter): boolean {
  if (typeof filter !== "object" || filter === null) return value === filter;
  return Object.entries(filter).every(([op, arg]) => {
    switch (op) {
      case "eq":
        return value === arg;
      case "ne":
        return value !== arg;
      case "lt":
        return (value as number) < (arg as number);
      case "gt":
        return (value as number) > (arg as number);
      case "in":
        return (arg as readonly Scalar[]).includes(value as Scalar);
      default:
        throw new Error(`the test has no reference for ${op}`);
    }
  });
}

/** The values a filter pins its field to: a bare value, or an `eq`. */
function pinned(filter: Filter): Scalar[] {
  if (typeof filter !== "object" || filter === null) return [filter];
  return Object.hasOwn(filter, "eq") ? [filter.eq as Scalar] : [];
}

for (const engine of ENGINES) {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? `filters that repeat the row scope, on ${engine.name}`, () => {
    let h: Harness;
    let stored: Stored[];
    beforeAll(async () => {
      h = await engine.open();
      await h.reset();
      stored = await h.rows("customers");
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(() => {
      h.clearCounts();
    });

    const reads = (db: SqlDatabase): ((cap: DbCapability<"read">, q: ReadQuery) => Promise<unknown>)[] =>
      engine.name === "sqlite" ? [(cap, q) => db.read(cap, q), (cap, q) => Promise.resolve().then(() => db.readSync(cap, q))] : [(cap, q) => db.read(cap, q)];

    it("property: every read returns exactly the rows its scope and its filters select, and is refused only for a pin outside its scope", async () => {
      const db = createSqlDatabase({ schema: SCHEMA, ...h.connection });
      const caps = scopedCapabilities();
      const readers = reads(db);
      let lean = 0;
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: caps.length - 1 }), where, fc.integer({ min: 0, max: readers.length - 1 }), fc.boolean(), async (c, w, r, limited) => {
          const { cap, scope } = caps[c] as Scoped;
          const filtered = Object.entries(w) as [string, Filter][];
          const query: ReadQuery = { model: "Customer", fields: ["id", "name"], where: w as NonNullable<ReadQuery["where"]>, orderBy: [{ field: "id" }], ...(limited ? { limit: 2 } : {}) };
          const outside = filtered.some(([field, filter]) => Object.hasOwn(scope, field) && pinned(filter).some((v) => v !== scope[field]));
          const repeats = filtered.filter(([field]) => Object.hasOwn(scope, field));
          if (!outside && repeats.length > 0 && repeats.every(([field, filter]) => pinned(filter).every((v) => Object.is(v, scope[field])))) lean++;
          const outcome = await (readers[r] as (cap: DbCapability<"read">, q: ReadQuery) => Promise<unknown>)(cap, query).catch((e: unknown) => e);
          if (outside) {
            expect(outcome).toBeInstanceOf(CapabilityDenied);
            return;
          }
          const expected = stored
            .filter((row) => Object.entries(scope).every(([field, v]) => fieldValue(row, field) === v))
            .filter((row) => filtered.every(([field, filter]) => passes(fieldValue(row, field), filter)))
            .map((row) => ({ id: row.id, name: row.name }))
            .slice(0, limited ? 2 : undefined);
          expect(outcome).toEqual(expected);
        }),
        { numRuns: 300 },
      );
      // The statement without the repeated filters ran, not only the full one.
      expect(lean).toBeGreaterThan(10);
    });

    it.skipIf(engine.name !== "sqlite")("the read of the row a capability is narrowed to tests its key once; a read giving another value for it (-0 for 0) tests it twice", async () => {
      const db = createSqlDatabase({ schema: SCHEMA, ...h.connection });
      const row0 = narrowToRow(capabilities().agent, { model: "Customer", id: 0 });
      const sqlite = (h.connection as { sqlite: { prepare: (sql: string) => unknown } }).sqlite;
      const prepare = vi.spyOn(sqlite, "prepare");
      const prepared = () => prepare.mock.calls.map(([text]) => text).filter((text) => text.includes("customers"));
      const keyTests = (text: string | undefined) => text?.match(/"customers"\."id" = \?/g)?.length;
      try {
        await expect(db.read(row0, { model: "Customer", fields: ["id", "name"], where: { id: 0 }, limit: 1 })).resolves.toEqual([]);
        expect(prepared()).toHaveLength(1);
        expect(keyTests(prepared()[0])).toBe(1);
        expect(prepared()[0]).toMatch(/"customers"\."tenant_id" = \?/);
        await expect(db.read(row0, { model: "Customer", fields: ["id", "name"], where: { id: -0 }, limit: 1 })).resolves.toEqual([]);
        expect(prepared()).toHaveLength(2);
        expect(keyTests(prepared()[1])).toBe(2);
        expect(h.executed()).toBe(2);
      } finally {
        prepare.mockRestore();
      }
    });
  });
}
