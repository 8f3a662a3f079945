import { readFileSync } from "node:fs";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createManualClock, createMint, InvalidInput, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability } from "../../src/resources/sql/database.ts";
import { introspectSchema } from "../../src/resources/sql/introspect.ts";
import { schemaFromPrisma } from "../../src/resources/sql/prisma-import.ts";
import { ENGINES, type Harness } from "./sql-fixture.ts";

/*
 * Model definitions imported from a real Prisma schema (shop.prisma), used
 * on a real database whose tables are what Prisma's migration would make:
 * on both engines, queries and grants work against the imported schema, and
 * it agrees with what introspection reads from the same tables.
 */

const SOURCE = readFileSync(new URL("shop.prisma", import.meta.url), "utf8");
const GRANT: Grant = {
  db: [
    { model: "Customer", ops: ["read", "create"], fields: ["id", "tenantId", "name", "email", "vip"], scope: { tenantId: 42 } },
    { model: "Order", ops: ["read"], scope: { tenantId: 42 } },
  ],
};

const DDL = {
  sqlite: [
    "CREATE TABLE shop_customers (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id INTEGER NOT NULL, name TEXT NOT NULL, email TEXT, vip BOOLEAN NOT NULL DEFAULT false, created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    "CREATE TABLE shop_orders (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id INTEGER NOT NULL, customer_id INTEGER NOT NULL REFERENCES shop_customers (id), total REAL NOT NULL, status TEXT NOT NULL DEFAULT 'open', tags TEXT)",
  ],
  postgres: [
    "CREATE TYPE \"Status\" AS ENUM ('open', 'paid')",
    'CREATE TABLE shop_customers (id SERIAL PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT NOT NULL, email TEXT, vip BOOLEAN NOT NULL DEFAULT false, created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP)',
    'CREATE TABLE shop_orders (id SERIAL PRIMARY KEY, tenant_id INTEGER NOT NULL, customer_id INTEGER NOT NULL REFERENCES shop_customers (id), total DOUBLE PRECISION NOT NULL, status "Status" NOT NULL DEFAULT \'open\', tags TEXT[])',
  ],
};

describe("a Prisma schema's models", () => {
  it("become models on their tables and columns with their relations; what cannot be expressed is listed", async () => {
    const { schema, skipped } = await schemaFromPrisma(SOURCE);
    expect(schema).toEqual({
      Customer: {
        table: "shop_customers",
        primaryKey: "id",
        fields: { id: { type: "integer", generated: true }, tenantId: { type: "integer", column: "tenant_id" }, name: { type: "text" }, email: { type: "text", nullable: true }, vip: { type: "boolean" } },
        relations: { orders: { model: "Order", from: "id", to: "customerId", many: true } },
      },
      Order: {
        table: "shop_orders",
        primaryKey: "id",
        fields: { id: { type: "integer", generated: true }, tenantId: { type: "integer", column: "tenant_id" }, customerId: { type: "integer", column: "customer_id" }, total: { type: "real" }, status: { type: "text" } },
        relations: { customer: { model: "Customer", from: "customerId", to: "id" } },
      },
    });
    expect(skipped).toEqual([
      { table: "shop_customers", column: "createdAt", reason: "its type DateTime is not one agentcap reads (integer, real, text, boolean)" },
      { table: "shop_orders", column: "tags", reason: "its type String[] is not one agentcap reads (integer, real, text, boolean)" },
      { table: "LineItem", reason: "its primary key spans several columns (@@id)" },
    ]);
    await expect(schemaFromPrisma("model {")).rejects.toThrow(InvalidInput);
  });

  it("relate by the relation's name where two relations join the same models, and list a relation over several fields or to a model left out", async () => {
    const source = `
model User {
  id       Int    @id
  written  Post[] @relation("author")
  reviewed Post[] @relation(name: "reviewer")
  profile  Profile?
  lines    Line[]
}
model Post {
  id         Int  @id
  authorId   Int
  reviewerId Int
  author     User @relation("author", fields: [authorId], references: [id])
  reviewer   User @relation(name: "reviewer", fields: [reviewerId], references: [id])
}
model Profile {
  id     Int  @id
  userId Int  @unique
  user   User @relation(fields: [userId], references: [id])
}
model Line {
  a    Int
  b    Int
  userId Int
  user User @relation(fields: [userId], references: [id])
  @@id([a, b])
}`;
    const { schema, skipped } = await schemaFromPrisma(source);
    expect(schema.User?.relations).toEqual({
      written: { model: "Post", from: "id", to: "authorId", many: true },
      reviewed: { model: "Post", from: "id", to: "reviewerId", many: true },
      profile: { model: "Profile", from: "id", to: "userId" },
    });
    expect(schema.Post?.relations).toEqual({ author: { model: "User", from: "authorId", to: "id" }, reviewer: { model: "User", from: "reviewerId", to: "id" } });
    expect(skipped).toContainEqual({ table: "User", column: "lines", reason: "it relates to Line, which was left out" });
    // The imported relations are a valid schema.
    expect(() => createSqlDatabase({ schema, sqlite: new Database(":memory:") })).not.toThrow();
  });
});

describe.each(ENGINES)("a Prisma schema on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "serves queries on the tables Prisma made", () => {
    let h: Harness;
    beforeAll(async () => {
      h = await engine.open();
      for (const statement of DDL[engine.name]) await h.exec(statement);
      await h.exec("INSERT INTO shop_customers (tenant_id, name, email, vip) VALUES (42, 'Ada', 'ada@example.com', true), (43, 'Dan', NULL, false)");
      await h.exec("INSERT INTO shop_orders (tenant_id, customer_id, total, status) VALUES (42, 1, 9.5, 'open'), (43, 2, 3, 'paid')");
    });
    afterAll(async () => {
      await h.close();
    });

    it("reads and writes inside the grant, and agrees with introspection on every field's type", async () => {
      const { schema } = await schemaFromPrisma(SOURCE);
      const db = createSqlDatabase({ schema, ...h.connection, grants: [GRANT] });
      const cap = createMint({ issuer: "prisma", clock: createManualClock(0), policy: () => GRANT }).issue({ id: "a" });
      expect(await db.read(cap as DbCapability<"read">, { model: "Order", fields: ["id", "total", "status"] })).toEqual([{ id: 1, total: 9.5, status: "open" }]);
      expect(await db.read(cap as DbCapability<"read">, { model: "Order", fields: ["id"], where: { status: "paid" } })).toEqual([]);
      const made = await db.create(cap, { model: "Customer", values: { name: "Bo", vip: false }, returning: ["id", "tenantId"] });
      expect(made.rows).toEqual([{ id: 3, tenantId: 42 }]);
      // The key is the database's to assign: generated, so a create naming it is refused.
      await expect(db.create(cap as DbCapability<"create">, { model: "Customer", values: { id: 9, name: "X", vip: false } })).rejects.toThrow(InvalidInput);
      expect(() => createSqlDatabase({ schema, ...h.connection, grants: [{ db: [{ model: "Customer", ops: ["read"], fields: ["createdAt"] }] }] })).toThrow(/Customer has no field createdAt/);

      const live = (await introspectSchema(h.connection)).schema;
      for (const model of Object.values(schema)) {
        const table = live[model.table];
        for (const [name, field] of Object.entries(model.fields)) {
          const column = field.column ?? name;
          // A Postgres enum column is text to Prisma and no type agentcap reads to introspection.
          if (engine.name === "postgres" && name === "status") continue;
          expect([name, table?.fields[column]?.type]).toEqual([name, field.type]);
        }
      }
    });
  });
});
