import Database from "better-sqlite3";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BudgetExhausted, createManualClock, createMint, LimitExceeded, narrow, type Capability, type Grant } from "../../src/index.ts";
import { checkCallCost, complexityOf } from "../../src/resources/sql/budgets.ts";
import { createSqlDatabase, type DbCapability, type SqlConnection, type SqlDatabase, type SqlLimits } from "../../src/resources/sql/database.ts";
import { parseRead, parseUpdate, type ReadQuery, type UpdateQuery } from "../../src/resources/sql/query.ts";
import { parseSchema, type SchemaSpec } from "../../src/resources/sql/schema.ts";
import { createTestSchema, databaseUrl, postgresSkipReason } from "../support/postgres.ts";

/*
 * Budgets: a statement's time limit, stopped by the engine itself; the
 * fields and complexity one call may have; the rows a chain may read in
 * total, charged to every link that sets a total. On both engines, over a
 * table large enough that scanning it takes well over a millisecond.
 */

const ROWS = 200_000;
const SCHEMA: SchemaSpec = {
  Item: {
    table: "items",
    primaryKey: "id",
    fields: { id: { type: "integer" }, tenantId: { type: "integer", column: "tenant_id" }, body: { type: "text" }, size: { type: "integer" } },
    relations: { parent: { model: "Item", from: "size", to: "id" } },
  },
};
const GRANT: Grant = { db: [{ model: "Item", ops: ["read", "update"], scope: { tenantId: 1 } }] };
/** A scan of every row: no index serves a substring match, and no row matches. */
const SCAN: ReadQuery = { model: "Item", fields: ["id"], where: { body: { contains: "absent" } } };

interface Engine {
  readonly name: string;
  readonly skip: string | null;
  open(): Promise<{ connection: SqlConnection; sizes(): Promise<number>; sessionTimeout(): Promise<string | null>; close(): Promise<void> }>;
}

const ENGINES: readonly Engine[] = [
  {
    name: "sqlite",
    skip: null,
    open: () => {
      const sqlite = new Database(":memory:");
      sqlite.exec(`CREATE TABLE items (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, body TEXT NOT NULL, size INTEGER NOT NULL);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS}) INSERT INTO items SELECT i, 1, 'item number ' || i, 0 FROM n;`);
      return Promise.resolve({
        connection: { sqlite },
        sizes: () => Promise.resolve((sqlite.prepare("SELECT sum(size) AS s FROM items").get() as { s: number }).s),
        sessionTimeout: () => Promise.resolve(null),
        close: () => {
          sqlite.close();
          return Promise.resolve();
        },
      });
    },
  },
  {
    name: "postgres",
    skip: postgresSkipReason,
    open: async () => {
      const schema = await createTestSchema(databaseUrl ?? "");
      const pool: pg.Pool = schema.pool;
      await pool.query("CREATE TABLE items (id integer PRIMARY KEY, tenant_id integer NOT NULL, body text NOT NULL, size integer NOT NULL)");
      await pool.query(`INSERT INTO items SELECT i, 1, 'item number ' || i, 0 FROM generate_series(1, ${ROWS}) AS i`);
      await pool.query("ANALYZE items");
      return {
        connection: { postgres: pool },
        sizes: async () => Number((await pool.query<{ s: string }>("SELECT sum(size) AS s FROM items")).rows[0]?.s),
        sessionTimeout: async () => (await pool.query<{ statement_timeout: string }>("SHOW statement_timeout")).rows[0]?.statement_timeout ?? null,
        close: () => schema.drop(),
      };
    },
  },
];

function agent(grant: Grant = GRANT): Capability {
  return createMint({ issuer: "budgets", clock: createManualClock(0), policy: () => grant }).issue({ id: "agent" });
}

describe.each(ENGINES)("budgets on $name", (engine) => {
  describe.skipIf(engine.skip !== null)(engine.skip ?? "per call and per chain", () => {
    let h: Awaited<ReturnType<Engine["open"]>>;
    const open = (limits: Partial<SqlLimits>): SqlDatabase => createSqlDatabase({ schema: SCHEMA, ...h.connection, limits });
    const read = (db: SqlDatabase, cap: Capability, q: ReadQuery) => db.read(cap as DbCapability<"read">, q);
    const update = (db: SqlDatabase, cap: Capability, q: UpdateQuery) => db.update(cap as DbCapability<"update">, q);

    beforeAll(async () => {
      h = await engine.open();
    }, 60_000);
    afterAll(async () => {
      await h.close();
    });

    it("the engine stops a statement past statementTimeoutMs; with room, the same scan completes", async () => {
      const cap = agent();
      const tight = open({ statementTimeoutMs: 1 });
      const error = await read(tight, cap, SCAN).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LimitExceeded);
      expect((error as LimitExceeded).limit).toBe("statementTimeoutMs");
      expect((error as Error).message).toMatch(/ran longer than 1 ms \(statementTimeoutMs\) and was stopped/);
      // The database keeps serving, and the pooled connections keep the application's own setting.
      expect(await read(open({ statementTimeoutMs: 120_000 }), cap, SCAN)).toEqual([]);
      expect(await read(tight, cap, { model: "Item", fields: ["id"], where: { id: 5 } })).toEqual([{ id: 5 }]);
      expect(await h.sessionTimeout()).toBe(engine.name === "postgres" ? "0" : null);
    });

    it("an update stopped at its time limit changes nothing", async () => {
      const tight = open({ statementTimeoutMs: 1, maxWriteRows: ROWS });
      const error = await update(tight, agent(), { model: "Item", set: { size: 1 }, where: { body: { startsWith: "item" } } }).catch((e: unknown) => e);
      expect((error as LimitExceeded).limit).toBe("statementTimeoutMs");
      expect(await h.sizes()).toBe(0);
    });

    it("refuses a call using more fields than maxFields, or more complex than maxComplexity, before any SQL", async () => {
      const db = open({ maxFields: 2, maxComplexity: 6 });
      const cap = agent();
      await expect(read(db, cap, { model: "Item", where: { id: 1 } })).rejects.toThrow(/uses 4 fields of Item; one call may use at most 2 \(maxFields\)/);
      await expect(read(db, cap, { model: "Item", fields: ["id"], where: { body: { contains: "x" } }, orderBy: [{ field: "id" }] })).rejects.toThrow(
        /complexity is 7, above the 6 one call may have \(maxComplexity\)/,
      );
      expect(await read(db, cap, { model: "Item", fields: ["id", "body"], where: { id: { in: [1, 2] } }, orderBy: [{ field: "id" }] })).toEqual([
        { id: 1, body: "item number 1" },
        { id: 2, body: "item number 2" },
      ]);
    });

    it("charges rows read to every link that sets maxRowsRead; a read past any link's total returns nothing and spends nothing", async () => {
      const db = open({});
      const root = agent({ db: [{ model: "Item", ops: ["read"], scope: { tenantId: 1 }, maxRowsRead: 5 }] });
      const child = narrow(root, { db: [{ model: "Item", ops: ["read"], scope: { tenantId: 1 }, maxRowsRead: 3 }] });
      const sibling = narrow(root, { db: [{ model: "Item", ops: ["read"], scope: { tenantId: 1 } }] });
      const page = (offset: number, limit: number): ReadQuery => ({ model: "Item", fields: ["id"], orderBy: [{ field: "id" }], limit, offset });
      expect(await read(db, child, page(0, 2))).toHaveLength(2);
      const over = await read(db, child, page(2, 2)).catch((e: unknown) => e);
      expect(over).toBeInstanceOf(BudgetExhausted);
      expect((over as BudgetExhausted).message).toMatch(/link 1 lets its chain read 3 Item rows in total \(maxRowsRead\); 1 are left and this read found 2/);
      expect(await read(db, child, page(2, 1))).toHaveLength(1);
      // The root spent 3 through its child: its sibling has 2 left.
      expect(await read(db, sibling, page(0, 2))).toHaveLength(2);
      const rootOver = await read(db, sibling, page(0, 1)).catch((e: unknown) => e);
      expect((rootOver as BudgetExhausted).details.link).toBe(0);
      expect((rootOver as BudgetExhausted).details.rule).toBe("db.maxRowsRead");
      // A read that finds nothing costs nothing.
      expect(await read(db, root, { model: "Item", fields: ["id"], where: { id: -1 } })).toEqual([]);
      // Another resource counts its own reads: the total is per resource, in this process.
      expect(await read(open({}), root, page(0, 5))).toHaveLength(5);
    });
  });
});

describe("complexity score", () => {
  const schema = parseSchema(SCHEMA);
  const limits = { maxRows: 100, maxInList: 100, maxIncludeDepth: 3 };
  const model = schema.models.get("Item");
  it("counts returned fields, filters, list values, substring matches, orderings, offsets, groups and aggregates", () => {
    const score = (q: ReadQuery) => {
      const p = parseRead(schema, q, limits);
      return complexityOf(p, p.select ?? model?.fields ?? []);
    };
    expect(score({ model: "Item", fields: ["id"] })).toBe(1);
    expect(score({ model: "Item", fields: ["id", "body"], where: { id: { in: [1, 2, 3] } } })).toBe(2 + 3);
    expect(score({ model: "Item", fields: ["id"], where: { body: { contains: "a" } }, orderBy: [{ field: "id" }], limit: 5, offset: 5 })).toBe(1 + 4 + 2 + 2);
    expect(score({ model: "Item" })).toBe(4);
    const u = parseUpdate(schema, { model: "Item", set: { size: 1 }, where: { id: 1 }, returning: ["id"] }, limits);
    expect(complexityOf(u, u.returning)).toBe(1 + 1 + 1);
  });

  it("counts each include 4 per level it is nested at, plus its own fields, filters and orderings", () => {
    const score = (q: ReadQuery) => {
      const p = parseRead(schema, q, limits);
      return complexityOf(p, p.select ?? model?.fields ?? []);
    };
    expect(score({ model: "Item", fields: ["id"], include: { parent: { fields: ["id", "body"] } } })).toBe(1 + 4 + 2);
    expect(score({ model: "Item", fields: ["id"], include: { parent: { fields: ["id", "body"], where: { size: 1 }, include: { parent: { fields: ["id"] } } } } })).toBe(1 + (4 + 2 + 1) + (8 + 1));
    // Without fields, an include counts every field of its model.
    expect(score({ model: "Item", fields: ["id"], include: { parent: {} } })).toBe(1 + 4 + 4);
  });

  it("counts the fields of included models in maxFields, and refuses includes nested deeper than maxIncludeDepth", () => {
    const p = parseRead(schema, { model: "Item", fields: ["id"], include: { parent: { fields: ["id", "body"] } } }, limits);
    // The read touches id and size (which relates its rows to the included ones), the included read id and body.
    expect(() => { checkCallCost(p, p.select ?? [], 3, 200); }).toThrow(/uses 4 fields \(2 of Item, 2 of the models it includes\); one call may use at most 3 \(maxFields\)/);
    expect(() => { checkCallCost(p, p.select ?? [], 4, 200); }).not.toThrow();
    const deep = { model: "Item", include: { parent: { include: { parent: { include: { parent: { include: { parent: {} } } } } } } } };
    expect(() => parseRead(schema, deep, limits)).toThrow(LimitExceeded);
    expect(() => parseRead(schema, deep, limits)).toThrow(/nests includes 4 levels deep; one read may nest at most 3 \(maxIncludeDepth\)/);
  });
});
