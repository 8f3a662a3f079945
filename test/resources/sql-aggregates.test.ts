import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CapabilityDenied, createManualClock, createMint, InvalidInput, narrow, type Capability, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { AggregateQuery } from "../../src/resources/sql/query.ts";
import { ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * Aggregates: counts, sums, averages, least and greatest values by group,
 * inside the row scope and row rules, on fields the capability shows whole
 * only. On both engines.
 */

const GRANT: Grant = {
  db: [
    { model: "Order", ops: ["read"], scope: { tenantId: 42 } },
    {
      model: "Customer",
      ops: ["read"],
      fields: ["id", "tenantId", "name", "email", "vip"],
      scope: { tenantId: 42 },
      fieldActions: { email: { mask: "{first2}***" }, name: "hash" },
    },
  ],
};

function agent(): Capability {
  return createMint({ issuer: "aggregates", clock: createManualClock(0), policy: () => GRANT }).issue({ id: "agent" });
}

interface Probe {
  readonly name: string;
  readonly query: unknown;
  readonly error: typeof CapabilityDenied | typeof InvalidInput;
  readonly message: RegExp;
}

const C = "Customer";
const PROBES: readonly Probe[] = [
  { name: "count of a denied field's values", query: { model: C, aggregates: { n: { fn: "count", field: "secretNote" } } }, error: CapabilityDenied, message: /does not grant field Customer\.secretNote/ },
  { name: "max of a denied field (its greatest value)", query: { model: C, aggregates: { m: { fn: "max", field: "secretNote" } } }, error: CapabilityDenied, message: /does not grant field Customer\.secretNote/ },
  { name: "group by a denied field", query: { model: C, groupBy: ["secretNote"], aggregates: { n: { fn: "count" } } }, error: CapabilityDenied, message: /does not grant field Customer\.secretNote/ },
  { name: "count filtered by a denied field", query: { model: C, where: { secretNote: { startsWith: "b" } }, aggregates: { n: { fn: "count" } } }, error: CapabilityDenied, message: /does not grant field Customer\.secretNote/ },
  { name: "min of a masked field (unmasks the least value)", query: { model: C, aggregates: { m: { fn: "min", field: "email" } } }, error: CapabilityDenied, message: /grants Customer\.email only masked/ },
  { name: "group by a masked field (one group per whole value)", query: { model: C, groupBy: ["email"], aggregates: { n: { fn: "count" } } }, error: CapabilityDenied, message: /grants Customer\.email only masked/ },
  { name: "count of a masked field's values", query: { model: C, aggregates: { n: { fn: "count", field: "email" } } }, error: CapabilityDenied, message: /grants Customer\.email only masked/ },
  { name: "group by a hashed field", query: { model: C, groupBy: ["name"], aggregates: { n: { fn: "count" } } }, error: CapabilityDenied, message: /grants Customer\.name only hashed/ },
  { name: "max of a hashed field", query: { model: C, aggregates: { m: { fn: "max", field: "name" } } }, error: CapabilityDenied, message: /grants Customer\.name only hashed/ },
  { name: "count filtered by a masked field", query: { model: C, where: { email: { contains: "@example" } }, aggregates: { n: { fn: "count" } } }, error: CapabilityDenied, message: /grants Customer\.email only masked/ },
  { name: "another tenant's total", query: { model: "Order", where: { tenantId: 43 }, aggregates: { s: { fn: "sum", field: "total" } } }, error: CapabilityDenied, message: /confines Order to rows where tenantId = 42/ },
  { name: "a model the grant does not name", query: { model: "Task", aggregates: { n: { fn: "count" } } }, error: CapabilityDenied, message: /does not grant read on model Task/ },
  { name: "sum of a text field", query: { model: "Order", aggregates: { s: { fn: "sum", field: "status" } } }, error: InvalidInput, message: /sum needs a number field; status is text/ },
  { name: "min of a boolean", query: { model: C, aggregates: { m: { fn: "min", field: "vip" } } }, error: InvalidInput, message: /min needs a number or text field/ },
  { name: "SQL in an aggregate's name", query: { model: "Order", aggregates: { "n FROM customers --": { fn: "count" } } }, error: InvalidInput, message: /the name must be an identifier/ },
  { name: "an unknown function", query: { model: "Order", aggregates: { n: { fn: "group_concat", field: "status" } } }, error: InvalidInput, message: /fn must be one of count, sum, avg, min, max/ },
  { name: "no aggregate", query: { model: "Order", aggregates: {} }, error: InvalidInput, message: /at least one aggregate/ },
];

describe.each(ENGINES)("aggregates on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "inside the scope and rules, on whole fields only", () => {
    let h: Harness;
    let db: SqlDatabase;
    const aggregate = (cap: Capability, q: unknown) => db.aggregate(cap as DbCapability<"read">, q as AggregateQuery);

    beforeAll(async () => {
      h = await engine.open();
      await h.reset();
      db = createSqlDatabase({ schema: SCHEMA, ...h.connection, limits: { maxRows: 3 } });
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(() => {
      h.clearCounts();
    });

    it("computes every function over the rows in scope", async () => {
      const rows = await aggregate(agent(), {
        model: "Order",
        aggregates: { orders: { fn: "count" }, revenue: { fn: "sum", field: "total" }, mean: { fn: "avg", field: "total" }, least: { fn: "min", field: "total" }, most: { fn: "max", field: "status" } },
      });
      expect(rows).toEqual([{ orders: 2, revenue: 29.5, mean: 14.75, least: 9.5, most: "paid" }]);
    });

    it("groups by whole fields, in their order, and counts a field's non-null values", async () => {
      expect(await aggregate(agent(), { model: C, groupBy: ["vip"], aggregates: { n: { fn: "count" }, ids: { fn: "count", field: "id" } } })).toEqual([
        { vip: false, n: 2, ids: 2 },
        { vip: true, n: 2, ids: 2 },
      ]);
      const wider = createMint({ issuer: "aggregates", policy: () => ({ db: [{ model: C, ops: ["read"] }] }) }).issue({ id: "wider" });
      expect(await aggregate(wider, { model: C, groupBy: ["tenantId"], aggregates: { emails: { fn: "count", field: "email" } } })).toEqual([
        { tenantId: 42, emails: 3 },
        { tenantId: 43, emails: 2 },
      ]);
    });

    it("applies every link's row rules", async () => {
      const paid = narrow(agent(), { db: [{ model: "Order", ops: ["read"], rows: { field: "status", op: "eq", value: "paid" } }] });
      expect(await aggregate(paid, { model: "Order", aggregates: { n: { fn: "count" }, s: { fn: "sum", field: "total" } } })).toEqual([{ n: 1, s: 20 }]);
      const none = narrow(paid, { db: [{ model: "Order", ops: ["read"], rows: { field: "total", op: "lt", value: 10 } }] });
      expect(await aggregate(none, { model: "Order", aggregates: { n: { fn: "count" }, s: { fn: "sum", field: "total" } } })).toEqual([{ n: 0, s: null }]);
    });

    it("refuses more groups than maxRows", async () => {
      await expect(aggregate(agent(), { model: C, groupBy: ["id"], aggregates: { n: { fn: "count" } } })).rejects.toThrow(/more than 3 groups of Customer/);
    });

    it.each(PROBES)("probe: $name is refused and runs no SQL", async (probe) => {
      const err = await aggregate(agent(), probe.query).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(probe.error);
      expect((err as Error).message).toMatch(probe.message);
      expect(h.executed()).toBe(0);
    });
  });
});
