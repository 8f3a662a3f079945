import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { BudgetExhausted, InvalidInput, LimitExceeded, readOnly, restrict, revocable, Revoked } from "../../src/index.ts";
import { createSqlDatabase, type SqlDatabase } from "../../src/resources/sql/database.ts";
import { capabilities, ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/* What confined queries may still do, on both engines. The bypass attempts are in sql-adversarial.test.ts. */

describe.each(ENGINES)("SQL resource on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "allowed queries", () => {
    let h: Harness;
    let db: SqlDatabase;
    const { agent, customer7 } = capabilities();

    beforeAll(async () => {
      h = await engine.open();
      db = createSqlDatabase({ schema: SCHEMA, ...h.connection, limits: { maxRows: 5, maxResultSize: 2000, maxWriteRows: 3 } });
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(async () => {
      await h.reset();
    });

    describe("reads", () => {
      it("returns only the tenant's rows, and by default only the fields the capability may read", async () => {
        const rows = await db.read(agent, { model: "Customer", orderBy: [{ field: "id" }] });
        expect(rows).toEqual([
          { id: 1, tenantId: 42, name: "Ada", email: "ada@example.com", vip: true },
          { id: 2, tenantId: 42, name: "Bob", email: null, vip: false },
          { id: 3, tenantId: 42, name: "Cyd 100%", email: "cyd@example.com", vip: false },
          { id: 7, tenantId: 42, name: "Grace", email: "grace@example.com", vip: true },
        ]);
      });

      it("returns the fields asked for, in schema order", async () => {
        const rows = await db.read(agent, { model: "Customer", fields: ["name", "id"], where: { id: 2 } });
        expect(rows).toEqual([{ id: 2, name: "Bob" }]);
        expect(Object.keys(rows[0] ?? {})).toEqual(["id", "name"]);
      });

      it("filters with every operator", async () => {
        const ids = async (where: object) =>
          (await db.read(agent, { model: "Customer", fields: ["id"], where: where as never, orderBy: [{ field: "id" }] })).map((r) => r.id);
        expect(await ids({ id: { in: [1, 3, 4] } })).toEqual([1, 3]);
        expect(await ids({ id: { gt: 1, lte: 3 } })).toEqual([2, 3]);
        expect(await ids({ id: { gte: 3 }, vip: true })).toEqual([7]);
        expect(await ids({ id: { lt: 2 } })).toEqual([1]);
        expect(await ids({ id: { ne: 1 } })).toEqual([2, 3, 7]);
        expect(await ids({ email: null })).toEqual([2]);
        expect(await ids({ email: { ne: null } })).toEqual([1, 3, 7]);
        expect(await ids({ name: { startsWith: "Gr" } })).toEqual([7]);
        expect(await ids({ name: { startsWith: "gr" } })).toEqual([]);
        expect(await ids({ name: { contains: "a" } })).toEqual([1, 7]);
        expect(await ids({ vip: false })).toEqual([2, 3]);
      });

      it("treats wildcard and quote characters in text filters literally", async () => {
        const names = async (where: object) => (await db.read(agent, { model: "Customer", fields: ["name"], where: where as never })).map((r) => r.name);
        expect(await names({ name: { contains: "%" } })).toEqual(["Cyd 100%"]);
        expect(await names({ name: { contains: "_" } })).toEqual([]);
        expect(await names({ name: { startsWith: "%" } })).toEqual([]);
        expect(await names({ name: "' OR '1'='1" })).toEqual([]);
      });

      it("orders, limits and pages", async () => {
        const page = async (offset: number) =>
          (await db.read(agent, { model: "Customer", fields: ["id"], orderBy: [{ field: "name", direction: "desc" }], limit: 2, offset })).map((r) => r.id);
        expect(await page(0)).toEqual([7, 3]);
        expect(await page(2)).toEqual([2, 1]);
        expect(await page(4)).toEqual([]);
      });

      it("orders and filters by the field, not by a column or alias that shares its name", async () => {
        const ids = async (field: "rank" | "weight") => (await db.read(agent, { model: "Task", fields: ["id", "rank", "weight"], orderBy: [{ field }] })).map((r) => r.id);
        expect(await ids("rank")).toEqual([1, 2, 3]);
        expect(await ids("weight")).toEqual([3, 2, 1]);
        expect(await db.read(agent, { model: "Task", where: { rank: 1 } })).toEqual([{ id: 1, rank: 1, weight: 30 }]);
      });

      it("reads numbers back as numbers", async () => {
        expect(await db.read(agent, { model: "Order", fields: ["id", "total"], orderBy: [{ field: "id" }] })).toEqual([
          { id: 10, total: 9.5 },
          { id: 11, total: 20 },
        ]);
      });

      it("lets a capability narrowed to one customer read that customer, by id or without a filter", async () => {
        expect(await db.read(customer7, { model: "Customer", fields: ["id", "name"] })).toEqual([{ id: 7, name: "Grace" }]);
        expect(await db.read(customer7, { model: "Customer", fields: ["name"], where: { id: 7 } })).toEqual([{ name: "Grace" }]);
      });

      it("refuses more than maxRows matching rows without a limit, rather than cutting silently", async () => {
        await db.create(agent, { model: "Customer", values: { id: 20, name: "Hal", vip: false } });
        await db.create(agent, { model: "Customer", values: { id: 21, name: "Ida", vip: false } });
        await expect(db.read(agent, { model: "Customer", fields: ["id"] })).rejects.toMatchObject({ name: "LimitExceeded", limit: "maxRows" });
        expect(await db.read(agent, { model: "Customer", fields: ["id"], limit: 5 })).toHaveLength(5);
      });

      it("refuses a result larger than maxResultSize", async () => {
        await db.update(agent, { model: "Customer", set: { name: "x".repeat(700) }, where: { id: { in: [1, 2, 3] } } });
        const err = await db.read(agent, { model: "Customer", fields: ["name"] }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(LimitExceeded);
        expect(err).toMatchObject({ limit: "maxResultSize" });
        expect(await db.read(agent, { model: "Customer", fields: ["name"], limit: 2 })).toHaveLength(2);
      });

      it("compiles and prepares each shape once, whatever the values", async () => {
        h.clearCounts();
        for (const id of [1, 2, 3, 7, 1]) await db.read(agent, { model: "Customer", fields: ["name"], where: { id } });
        // The same shape written differently: field and filter order do not matter.
        await db.read(agent, { model: "Customer", where: { id: 2 }, fields: ["name"] });
        expect(h.prepared()).toBe(1);
        expect(h.executed()).toBe(6);
      });
    });

    describe("the kernel decides every call", () => {
      it("takes no part of a query from a polluted Object.prototype", async () => {
        const polluted = { fields: ["secretNote"], where: { tenantId: 43 }, limit: 1e9, tenant: "t43" };
        Object.assign(Object.prototype, polluted);
        try {
          const rows = await db.read(agent, { model: "Customer", orderBy: [{ field: "id" }] });
          expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 7]);
        } finally {
          for (const key of Object.keys(polluted)) Reflect.deleteProperty(Object.prototype, key);
        }
      });

      it("denies a revoked capability whose shape is already planned and prepared", async () => {
        const forwarder = revocable(agent);
        expect(await db.read(forwarder.capability, { model: "Customer", fields: ["id"], where: { id: 1 } })).toEqual([{ id: 1 }]);
        forwarder.revoke("the task ended");
        h.clearCounts();
        await expect(db.read(forwarder.capability, { model: "Customer", fields: ["id"], where: { id: 1 } })).rejects.toBeInstanceOf(Revoked);
        expect(h.executed()).toBe(0);
      });

      it("charges every call to the capability's budget", async () => {
        const budgeted = restrict(agent, { budget: { calls: 2 } });
        const read = () => db.read(budgeted, { model: "Customer", fields: ["id"], where: { id: 2 } });
        await read();
        await read();
        await expect(read()).rejects.toBeInstanceOf(BudgetExhausted);
      });

      it("refuses at compile time a capability that cannot reach the operation", () => {
        const viewer = readOnly(agent);
        // @ts-expect-error a read-only capability cannot be passed where update is needed
        const attempt = () => db.update(viewer, { model: "Customer", set: { name: "x" } });
        expect(attempt).toBeTypeOf("function");
      });
    });

    describe("writes", () => {
      it("creates inside the scope, setting the scope's fields the values leave out", async () => {
        const made = await db.create(agent, { model: "Customer", values: { name: "Hal", vip: true }, returning: ["id", "tenantId", "name", "vip"] });
        expect(made.count).toBe(1);
        expect(made.rows[0]).toMatchObject({ tenantId: 42, name: "Hal", vip: true });
        expect(typeof made.rows[0]?.id).toBe("number");
        const explicit = await db.create(agent, { model: "Customer", values: { id: 30, tenantId: 42, name: "Ida", vip: false } });
        expect(explicit).toEqual({ count: 1, rows: [] });
        expect((await h.rows("customers")).find((r) => r.id === 30)).toMatchObject({ tenant_id: 42, name: "Ida" });
      });

      it("leaves a generated key to the database and returns it", async () => {
        const made = await db.create(agent, { model: "Order", values: { customerId: 1, total: 3.5, status: "open" }, returning: ["id", "tenantId"] });
        expect(made.rows[0]).toMatchObject({ tenantId: 42 });
        const id = made.rows[0]?.id;
        expect(typeof id).toBe("number");
        expect([10, 11, 12]).not.toContain(id);
      });

      it("stores injection-looking values as plain data", async () => {
        const evil = `Robert'); DROP TABLE customers;--`;
        await db.create(agent, { model: "Customer", values: { id: 31, name: evil, email: `" OR 1=1 --`, vip: false } });
        expect(await db.read(agent, { model: "Customer", fields: ["name", "email"], where: { id: 31 } })).toEqual([{ name: evil, email: `" OR 1=1 --` }]);
        expect(await h.rows("customers")).toHaveLength(8);
      });

      it("updates only rows in scope", async () => {
        const result = await db.update(agent, { model: "Customer", set: { vip: true }, where: { vip: false }, returning: ["id"] });
        expect(result.count).toBe(2);
        expect(result.rows.map((r) => r.id).sort()).toEqual([2, 3]);
        const other = (await h.rows("customers")).filter((r) => r.tenant_id === 43).map((r) => Boolean(r.vip));
        expect(other).toEqual([true, false, false]);
      });

      it("lets a capability narrowed to one customer update that customer only", async () => {
        expect(await db.update(customer7, { model: "Customer", set: { name: "Grace H." } })).toEqual({ count: 1, rows: [] });
        const names = (await h.rows("customers")).map((r) => r.name);
        expect(names).toEqual(["Ada", "Bob", "Cyd 100%", "Dan", "Eve", "Fay", "Grace H."]);
      });

      it("keeps a row in scope when an update writes the scope's own value", async () => {
        expect((await db.update(agent, { model: "Customer", set: { tenantId: 42 }, where: { id: 1 } })).count).toBe(1);
      });

      it("deletes only rows in scope", async () => {
        expect(await db.delete(agent, { model: "Customer", where: { name: { startsWith: "Bo" } } })).toEqual({ count: 1, rows: [] });
        expect((await h.rows("customers")).map((r) => r.id)).toEqual([1, 3, 4, 5, 6, 7]);
        expect((await db.delete(customer7, { model: "Customer" })).count).toBe(1);
        expect((await h.rows("customers")).map((r) => r.id)).toEqual([1, 3, 4, 5, 6]);
      });

      it("refuses an update or delete that would change more than maxWriteRows rows, and changes nothing", async () => {
        const err = await db.update(agent, { model: "Customer", set: { name: "same" } }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(LimitExceeded);
        expect(err).toMatchObject({ limit: "maxWriteRows", message: expect.stringMatching(/4 rows; .* at most 3/) as unknown });
        await expect(db.delete(agent, { model: "Customer" })).rejects.toBeInstanceOf(LimitExceeded);
        expect(await h.rows("customers")).toHaveLength(7);
        expect((await h.rows("customers")).map((r) => r.name)).not.toContain("same");
      });

      it("reports a write the database refuses as InvalidInput, without the driver's text", async () => {
        const dup = await db.create(agent, { model: "Customer", values: { id: 1, name: "Twin", vip: false } }).catch((e: unknown) => e);
        expect(dup).toBeInstanceOf(InvalidInput);
        expect((dup as Error).message).toBe("the database refused the values given: another row already has that value of a unique field");
        const email = db.update(agent, { model: "Customer", set: { email: "ada@example.com" }, where: { id: 2 } });
        await expect(email).rejects.toThrow(/unique field/);
      });
    });
  });
});
