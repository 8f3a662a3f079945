import Database from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect, sql, type ColumnDefinitionBuilder } from "kysely";
import { vi } from "vitest";
import { createManualClock, createMint, narrowToRow, type Clock, type Grant } from "../../src/index.ts";
import type { SchemaSpec } from "../../src/resources/sql/schema.ts";
import type { SqlConnection } from "../../src/resources/sql/database.ts";
import { createTestSchema, databaseUrl, postgresSkipReason } from "../support/postgres.ts";

/*
 * The same tables and rows on each engine, and a count of what reached the
 * driver, taken at the driver itself (better-sqlite3's `verbose` hook, which
 * sees every statement run; the pg pool's `connect`, which every statement
 * goes through), so a test can prove that a denied call ran nothing.
 */

/** The application schema the tests configure. `Task` maps each field to the other's column, to catch alias mix-ups. */
export const SCHEMA: SchemaSpec = {
  Customer: {
    table: "customers",
    primaryKey: "id",
    fields: {
      id: { type: "integer" },
      tenantId: { type: "integer", column: "tenant_id" },
      name: { type: "text" },
      email: { type: "text", nullable: true },
      vip: { type: "boolean" },
      secretNote: { type: "text", column: "secret_note", nullable: true },
    },
  },
  Order: {
    table: "orders",
    primaryKey: "id",
    fields: {
      // Assigned by the database (autoincrement, identity): no query may give it.
      id: { type: "integer", generated: true },
      tenantId: { type: "integer", column: "tenant_id" },
      customerId: { type: "integer", column: "customer_id" },
      total: { type: "real" },
      status: { type: "text" },
    },
  },
  Task: {
    table: "tasks",
    primaryKey: "id",
    fields: {
      id: { type: "integer" },
      rank: { type: "integer", column: "weight" },
      weight: { type: "integer", column: "rank" },
    },
  },
};

interface Tables {
  customers: { id: number; tenant_id: number; name: string; email: string | null; vip: boolean | number; secret_note: string | null };
  orders: { id: number; tenant_id: number; customer_id: number; total: number; status: string };
  tasks: { id: number; weight: number; rank: number };
}

const CUSTOMERS = [
  { id: 1, tenant_id: 42, name: "Ada", email: "ada@example.com", vip: true, secret_note: "owes us money" },
  { id: 2, tenant_id: 42, name: "Bob", email: null, vip: false, secret_note: null },
  { id: 3, tenant_id: 42, name: "Cyd 100%", email: "cyd@example.com", vip: false, secret_note: null },
  { id: 7, tenant_id: 42, name: "Grace", email: "grace@example.com", vip: true, secret_note: "board member" },
  { id: 4, tenant_id: 43, name: "Dan", email: "dan@example.com", vip: true, secret_note: "competitor" },
  { id: 5, tenant_id: 43, name: "Eve", email: null, vip: false, secret_note: null },
  { id: 6, tenant_id: 43, name: "Fay", email: "fay@example.com", vip: false, secret_note: null },
];
const ORDERS = [
  { id: 10, tenant_id: 42, customer_id: 1, total: 9.5, status: "open" },
  { id: 11, tenant_id: 42, customer_id: 7, total: 20, status: "paid" },
  { id: 12, tenant_id: 43, customer_id: 4, total: 15, status: "open" },
];
const TASKS = [
  { id: 1, weight: 1, rank: 30 },
  { id: 2, weight: 2, rank: 20 },
  { id: 3, weight: 3, rank: 10 },
];

/** One engine under test, opened fresh for a test file. */
export interface Harness {
  readonly connection: SqlConnection;
  /** Puts the fixture rows back. */
  reset(): Promise<void>;
  /** Runs SQL of the test's own directly (to add tables). */
  exec(sql: string): Promise<void>;
  /** Every row of a table, read directly, ordered by id. */
  rows(table: keyof Tables): Promise<Record<string, unknown>[]>;
  /** Statements run (SQLite) or connections checked out (Postgres) since the last `clearCounts`. */
  executed(): number;
  /** Distinct statements prepared since the last `clearCounts`. */
  prepared(): number;
  clearCounts(): void;
  close(): Promise<void>;
}

export interface EngineFixture {
  readonly name: "sqlite" | "postgres";
  /** Why this engine is skipped here, or null. */
  readonly skipReason: string | null;
  open(): Promise<Harness>;
}

async function createTables(db: Kysely<Tables>, identity: (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder): Promise<void> {
  await db.schema
    .createTable("customers")
    .addColumn("id", "integer", (c) => identity(c.primaryKey()))
    .addColumn("tenant_id", "integer", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("email", "text", (c) => c.unique())
    .addColumn("vip", "boolean", (c) => c.notNull())
    .addColumn("secret_note", "text")
    .execute();
  await db.schema.createIndex("customers_tenant").on("customers").column("tenant_id").execute();
  await db.schema
    .createTable("orders")
    .addColumn("id", "integer", (c) => identity(c.primaryKey()))
    .addColumn("tenant_id", "integer", (c) => c.notNull())
    .addColumn("customer_id", "integer", (c) => c.notNull())
    .addColumn("total", "double precision", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("tasks")
    .addColumn("id", "integer", (c) => c.primaryKey())
    .addColumn("weight", "integer", (c) => c.notNull())
    .addColumn("rank", "integer", (c) => c.notNull())
    .execute();
}

async function fill(db: Kysely<Tables>, booleans: (v: boolean) => boolean | number): Promise<void> {
  await db.deleteFrom("customers").execute();
  await db.deleteFrom("orders").execute();
  await db.deleteFrom("tasks").execute();
  await db.insertInto("customers").values(CUSTOMERS.map((c) => ({ ...c, vip: booleans(c.vip) }))).execute();
  await db.insertInto("orders").values(ORDERS).execute();
  await db.insertInto("tasks").values(TASKS).execute();
}

const sqliteFixture: EngineFixture = {
  name: "sqlite",
  skipReason: null,
  open: async () => {
    let executed = 0;
    const database = new Database(":memory:", {
      verbose: () => {
        executed++;
      },
    });
    const prepare = vi.spyOn(database, "prepare");
    const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database }) });
    await createTables(db, (c) => c);
    const booleans = (v: boolean) => (v ? 1 : 0);
    return {
      connection: { sqlite: database },
      reset: () => fill(db, booleans),
      exec: (text) => {
        database.exec(text);
        return Promise.resolve();
      },
      rows: (table) => db.selectFrom(table).selectAll().orderBy("id").execute(),
      executed: () => executed,
      prepared: () => prepare.mock.calls.length,
      clearCounts: () => {
        executed = 0;
        prepare.mockClear();
      },
      close: async () => {
        await db.destroy();
      },
    };
  },
};

const postgresFixture: EngineFixture = {
  name: "postgres",
  skipReason: postgresSkipReason,
  open: async () => {
    const schema = await createTestSchema(databaseUrl ?? "");
    const { pool } = schema;
    const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
    // Identities start above the fixture's ids, so rows created without an id do not collide with them.
    await createTables(db, (c) => c.modifyEnd(sql`generated by default as identity (start with 1000)`));
    const query = vi.spyOn(pool, "query");
    const connect = vi.spyOn(pool, "connect");
    // A named statement is prepared once per connection and reused; its name stands for its shape.
    const names = () => new Set(query.mock.calls.map(([config]: readonly unknown[]) => (config as { name?: string } | undefined)?.name).filter((n) => n !== undefined));
    return {
      connection: { postgres: pool },
      reset: () => fill(db, (v) => v),
      exec: async (text) => {
        await pool.query(text);
      },
      rows: (table) => db.selectFrom(table).selectAll().orderBy("id").execute(),
      // Every statement, pooled or in a transaction, first checks a connection out of the pool.
      executed: () => connect.mock.calls.length,
      prepared: () => names().size,
      clearCounts: () => {
        query.mockClear();
        connect.mockClear();
      },
      // The Kysely instance shares the pool, which drop() ends.
      close: () => schema.drop(),
    };
  },
};

/** Both engines; Postgres reports a skip reason when DATABASE_URL is unset. */
export const ENGINES: readonly EngineFixture[] = [sqliteFixture, postgresFixture];

/** What the tests' agent may do: tenant 42's customers (all but the secret note) and orders, and every task. */
export const AGENT_GRANT = {
  db: [
    { model: "Customer", ops: ["read", "create", "update", "delete"], fields: ["id", "tenantId", "name", "email", "vip"], scope: { tenantId: 42 } },
    { model: "Order", ops: ["read", "create"], scope: { tenantId: 42 } },
    { model: "Task", ops: ["read"] },
  ],
} as const satisfies Grant;

/** The agent's root capability, and a sub-tool's capability narrowed to customer 7. */
export function capabilities(clock: Clock = createManualClock(0)) {
  const mint = createMint({ issuer: "sql-tests", clock, policy: () => AGENT_GRANT });
  const agent = mint.issue({ id: "agent-42" });
  return { mint, agent, customer7: narrowToRow(agent, { model: "Customer", id: 7 }) };
}
