import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { CapabilityDenied } from "../../src/kernel/errors.ts";
import type { Grant } from "../../src/kernel/grant.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { createSqlDatabase } from "../../src/resources/sql/database.ts";
import type { SchemaSpec } from "../../src/resources/sql/schema.ts";
import { databaseTools } from "../../src/tools/builtin/database.ts";
import { defineTool, subToolNeeds } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink } from "./memory-sink.ts";
import { ApprovalRefused, createApprovals, narrow } from "../../src/index.ts";

const SCHEMA: SchemaSpec = {
  Customer: {
    table: "customers",
    primaryKey: "id",
    fields: { id: { type: "integer" }, tenantId: { type: "integer", column: "tenant_id" }, name: { type: "text" }, note: { type: "text", nullable: true } },
  },
  Order: { table: "orders", primaryKey: "id", fields: { id: { type: "integer" }, tenantId: { type: "integer", column: "tenant_id" }, total: { type: "real" } } },
};

const GRANT: Grant = {
  tools: ["db_query", "db_create", "db_update", "db_delete", "db_aggregate"],
  db: [
    { model: "Customer", ops: ["read", "create", "update", "delete"], fields: ["id", "tenantId", "name"], scope: { tenantId: 42 } },
    { model: "Order", ops: ["read"], scope: { tenantId: 42 } },
  ],
};

function setup() {
  const sqlite = new Database(":memory:");
  sqlite.exec(`
    CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT NOT NULL, note TEXT);
    CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, total REAL NOT NULL);
    INSERT INTO customers VALUES (7, 42, 'Ada', 'vip'), (8, 42, 'Grace', NULL), (9, 43, 'Linus', 'competitor');
    INSERT INTO orders VALUES (100, 42, 9.5), (101, 43, 20);
  `);
  const db = createSqlDatabase({ sqlite, schema: SCHEMA });
  const tools = databaseTools(db, SCHEMA);
  const sink = memorySink();
  const dispatcher = createDispatcher({ tools: [tools.query, tools.create, tools.update, tools.delete], audit: sink });
  const cap = createMint({ issuer: "t", policy: () => GRANT }).issue({ id: "alice" });
  const rows = (sql: string) => sqlite.prepare(sql).all();
  return { tools, sink, dispatcher, cap, rows };
}

describe("database tools", () => {
  it("reads only the caller's rows, with the model's filters pinning the handler's scope further", async () => {
    const { dispatcher, cap, sink } = setup();
    await expect(dispatcher.call("db_query", { model: "Customer", fields: ["id", "name"], orderBy: [{ field: "id" }] }, cap)).resolves.toEqual([
      { id: 7, name: "Ada" },
      { id: 8, name: "Grace" },
    ]);
    await expect(dispatcher.call("db_query", { model: "Customer", fields: ["name"], where: { id: 8 } }, cap)).resolves.toEqual([{ name: "Grace" }]);
    expect(sink.toolEvents().every((e) => e.decision.allowed)).toBe(true);
  });

  it("denies another tenant's rows and ungranted fields before any SQL runs", async () => {
    const { dispatcher, cap, sink } = setup();
    await expect(dispatcher.call("db_query", { model: "Customer", fields: ["name"], where: { tenantId: 43 } }, cap)).rejects.toThrow(/confines Customer to rows where tenantId = 42/);
    await expect(dispatcher.call("db_query", { model: "Customer", fields: ["name", "note"] }, cap)).rejects.toThrow(/does not grant field Customer.note/);
    await expect(dispatcher.call("db_query", { model: "Order", fields: ["total"], where: { tenantId: { eq: 43 } } }, cap)).rejects.toThrow(CapabilityDenied);
    expect(sink.toolEvents().map((e) => e.request.action)).toEqual(["db.read", "db.read", "db.read"]);
  });

  it("creates, updates and deletes inside the scope, and refuses to move or put rows outside it", async () => {
    const { dispatcher, cap, rows } = setup();
    await expect(dispatcher.call("db_create", { model: "Customer", values: { id: 10, name: "Zed" }, returning: ["id", "tenantId"] }, cap)).resolves.toEqual({
      count: 1,
      rows: [{ id: 10, tenantId: 42 }],
    });
    await expect(dispatcher.call("db_create", { model: "Customer", values: { id: 11, tenantId: 43, name: "Mallory" } }, cap)).rejects.toThrow(CapabilityDenied);
    await expect(dispatcher.call("db_update", { model: "Customer", set: { name: "Ada L." }, where: { id: 7 } }, cap)).resolves.toMatchObject({ count: 1 });
    await expect(dispatcher.call("db_update", { model: "Customer", set: { tenantId: 43 }, where: { id: 7 } }, cap)).rejects.toThrow(/tenantId = 42/);
    await expect(dispatcher.call("db_delete", { model: "Customer", where: { id: 9 } }, cap)).resolves.toMatchObject({ count: 0 });
    await expect(dispatcher.call("db_delete", { model: "Customer", where: { id: 8 } }, cap)).resolves.toMatchObject({ count: 1 });
    expect(rows("SELECT id, tenant_id, name FROM customers ORDER BY id")).toEqual([
      { id: 7, tenant_id: 42, name: "Ada L." },
      { id: 9, tenant_id: 43, name: "Linus" },
      { id: 10, tenant_id: 42, name: "Zed" },
    ]);
  });

  it("lets a parent tool narrow to one customer for a sub-tool (the article's narrow_to)", async () => {
    const { tools, sink } = setup();
    const overview = defineTool(
      {
        name: "customer_overview",
        description: "One customer's name, then (try to) their orders.",
        input: z.object({ id: z.number().int() }),
        needs: (input, ctx) => subToolNeeds(tools.query, { model: "Customer", fields: ["name"], where: { id: input.id } }, ctx),
      },
      async (input, c, ctx) => {
        const customerCap = narrow(c, { tools: ["db_query"], db: [{ model: "Customer", ops: ["read"], scope: { id: input.id } }] });
        const customer = await ctx.call(tools.query, { model: "Customer", fields: ["name"], where: { id: input.id } }, customerCap);
        const orders = await ctx.call(tools.query, { model: "Order", fields: ["total"] }, customerCap).catch((e: unknown) => (e as Error).name);
        const other = await ctx.call(tools.query, { model: "Customer", fields: ["name"], where: { id: 8 } }, customerCap).catch((e: unknown) => (e as Error).name);
        return { customer, orders, other };
      },
    );
    const dispatcher = createDispatcher({ tools: [tools.query, overview], audit: sink });
    const withTool = createMint({ issuer: "t", policy: () => ({ ...GRANT, tools: ["db_query", "customer_overview"] }) }).issue({ id: "alice" });
    await expect(dispatcher.call(overview, { id: 7 }, withTool)).resolves.toEqual({ customer: [{ name: "Ada" }], orders: "CapabilityDenied", other: "CapabilityDenied" });
  });

  it("through a chain that masks a field and confines rows by a rule, the tools ask for exactly what the resource will use", async () => {
    const { dispatcher, cap } = setup();
    const masked = narrow(cap, {
      tools: ["db_query", "db_update"],
      db: [{ model: "Customer", ops: ["read", "update"], fieldActions: { name: { mask: "{first1}***" } }, rows: { field: "id", op: "ne", value: 8 } }],
    });
    await expect(dispatcher.call("db_query", { model: "Customer", fields: ["id", "name"], orderBy: [{ field: "id" }] }, masked)).resolves.toEqual([{ id: 7, name: "A***" }]);
    await expect(dispatcher.call("db_query", { model: "Customer", fields: ["id"], where: { name: "Ada" } }, masked)).rejects.toThrow(/grants Customer\.name only masked/);
    await expect(dispatcher.call("db_update", { model: "Customer", set: { tenantId: 42 }, where: {} }, masked)).resolves.toMatchObject({ count: 1 });
    await expect(dispatcher.call("db_update", { model: "Customer", set: { id: 8 }, where: { id: 7 } }, masked)).rejects.toThrow(/row rule on id/);
  });

  it("a write that needs approval is suspended, and runs once approved, on exactly the rows approved", async () => {
    const sqlite = new Database(":memory:");
    sqlite.exec(`
      CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT NOT NULL, note TEXT);
      INSERT INTO customers VALUES (7, 42, 'Ada', 'vip'), (8, 42, 'Grace', NULL), (9, 43, 'Linus', 'competitor');
    `);
    const tools = databaseTools(createSqlDatabase({ sqlite, schema: SCHEMA }), SCHEMA);
    const sink = memorySink();
    const mint = createMint({
      issuer: "t",
      policy: (p) => (p.id === "alice" ? { ...GRANT, approval: [{ actions: ["db.delete", "db.update"], approvers: ["bob"] }] } : { tools: [] }),
    });
    const approvals = createApprovals({ audit: sink, mints: [mint.id] });
    const dispatcher = createDispatcher({ tools: [tools.query, tools.delete, tools.update], audit: sink, approvals });
    const alice = mint.issue({ id: "alice" });
    const bob = mint.issue({ id: "bob" });
    const pending = async () => {
      for (let i = 0; i < 500; i++) {
        const [first] = await approvals.list();
        if (first !== undefined) return first;
        await new Promise((r) => setTimeout(r, 2));
      }
      throw new Error("no pending approval");
    };
    const deleting = dispatcher.call("db_delete", { model: "Customer", where: { id: 8 } }, alice);
    const request = await pending();
    expect(sqlite.prepare("SELECT count(*) AS n FROM customers").get()).toEqual({ n: 3 });
    await approvals.approve(request.id, bob);
    await expect(deleting).resolves.toMatchObject({ count: 1 });
    expect(sqlite.prepare("SELECT id FROM customers ORDER BY id").all()).toEqual([{ id: 7 }, { id: 9 }]);
    // Reads need no approval; a denied approval leaves the rows as they were.
    await expect(dispatcher.call("db_query", { model: "Customer", fields: ["id"] }, alice)).resolves.toEqual([{ id: 7 }]);
    const updating = dispatcher.call("db_update", { model: "Customer", set: { name: "Eve" }, where: { id: 7 } }, alice);
    await approvals.deny((await pending()).id, bob, "no");
    await expect(updating).rejects.toThrow(ApprovalRefused);
    expect(sqlite.prepare("SELECT name FROM customers WHERE id = 7").get()).toEqual({ name: "Ada" });
  });

  it("pass a write's reason to the database, which a rule can require and the audit records", async () => {
    const sqlite = new Database(":memory:");
    sqlite.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT NOT NULL, note TEXT); INSERT INTO customers VALUES (7, 42, 'Ada', 'vip'), (8, 42, 'Grace', NULL);");
    const sink = memorySink();
    const tools = databaseTools(createSqlDatabase({ sqlite, schema: SCHEMA, audit: sink }), SCHEMA);
    const dispatcher = createDispatcher({ tools: [tools.delete], audit: sink });
    const grant: Grant = { tools: ["db_delete"], db: [{ model: "Customer", ops: ["delete"], scope: { tenantId: 42 }, requireReason: true }] };
    const cap = createMint({ issuer: "t", policy: () => grant }).issue({ id: "alice" });
    await expect(dispatcher.call("db_delete", { model: "Customer", where: { id: 8 } }, cap)).rejects.toThrow(/requires a reason on every delete of Customer: give query\.reason/);
    await expect(dispatcher.call("db_delete", { model: "Customer", where: { id: 8 }, reason: "duplicate of 7" }, cap)).resolves.toMatchObject({ count: 1 });
    expect(sink.events.filter((e) => e.kind === "resource").map((e) => [e.decision.allowed, e.reason])).toEqual([
      [false, undefined],
      [true, "duplicate of 7"],
    ]);
  });

  it("aggregates inside the caller's scope, with the tool's needs naming every field it uses", async () => {
    const { tools, cap, sink } = setup();
    const dispatcher = createDispatcher({ tools: [tools.aggregate], audit: sink });
    const withTool = narrow(cap, { tools: ["db_aggregate"], db: [{ model: "Order", ops: ["read"] }, { model: "Customer", ops: ["read"], fields: ["id", "tenantId"] }] });
    await expect(dispatcher.call("db_aggregate", { model: "Order", aggregates: { n: { fn: "count" }, s: { fn: "sum", field: "total" } } }, withTool)).resolves.toEqual([{ n: 1, s: 9.5 }]);
    await expect(dispatcher.call("db_aggregate", { model: "Customer", groupBy: ["name"], aggregates: { n: { fn: "count" } } }, withTool)).rejects.toThrow(CapabilityDenied);
  });
});
