import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createManualClock, createMint, GrantSchemaMismatch, InvalidInput, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability } from "../../src/resources/sql/database.ts";
import { checkGrants, schemaCheckedPolicy } from "../../src/resources/sql/grant-check.ts";
import { introspectSchema } from "../../src/resources/sql/introspect.ts";
import { AGENT_GRANT, ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * The schema read from the live database, on both engines, and grants
 * checked against a schema before they are used: one error listing every
 * problem, at resource creation and at mint time.
 */

const BAD: Grant = {
  db: [
    { model: "Invoice", ops: ["read"] },
    { model: "Customer", ops: ["read"], fields: ["id", "nmae", "email"], scope: { tenant: 42 }, fieldActions: { ssn: "redact" } },
    { model: "Order", ops: ["read"], scope: { tenantId: "42" }, rows: { any: [{ field: "state", op: "eq", value: "open" }, { field: "total", op: "gt", value: 1 }] } },
  ],
};
const PROBLEMS = [
  "grants.0.db.0: model Invoice is not in the schema",
  "grants.0.db.1.fields: Customer has no field nmae",
  "grants.0.db.1.fieldActions: Customer has no field ssn",
  "grants.0.db.1.scope: Customer has no field tenant, so the scope cannot be enforced",
  "grants.0.db.2.rows: Order has no field state, so the row rule cannot be enforced",
  'grants.0.db.2.scope: tenantId must be an integer, got "42"',
];

describe("grants checked against the schema", () => {
  it("one GrantSchemaMismatch lists every unknown model and field and every scope the schema cannot enforce", () => {
    const error = (() => {
      try {
        checkGrants(SCHEMA, [AGENT_GRANT, BAD]);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(GrantSchemaMismatch);
    expect(error).toBeInstanceOf(InvalidInput);
    expect((error as GrantSchemaMismatch).code).toBe("ERR_GRANT_SCHEMA_MISMATCH");
    expect((error as GrantSchemaMismatch).problems).toEqual(PROBLEMS.map((p) => p.replace("grants.0", "grants.1")));
    expect((error as Error).message).toMatch(/^the grants do not fit the database's schema \(6 problems\): grants\.1\.db\.0: model Invoice/);
    expect(() => { checkGrants(SCHEMA, [AGENT_GRANT]); }).not.toThrow();
    expect(() => { checkGrants(SCHEMA, [{ db: [{ model: "Customer", ops: ["fly"] }] } as unknown as Grant]); }).toThrow(InvalidInput);
  });

  it("a scope bound to the principal fits a text field and is refused on a field of another type", () => {
    const bound = (field: string) => ({ db: [{ model: "Customer", ops: ["read"], fields: ["id", "name"], scope: { [field]: { principal: "tenant" } } }] }) as unknown as Grant;
    expect(() => { checkGrants(SCHEMA, [bound("name")]); }).not.toThrow();
    expect(() => { checkGrants(SCHEMA, [bound("tenantId")]); }).toThrow(GrantSchemaMismatch);
    try {
      checkGrants(SCHEMA, [bound("tenantId")]);
    } catch (e) {
      expect((e as GrantSchemaMismatch).problems).toEqual(["grants.0.db.0.scope: tenantId is bound to the principal's tenant, a string, but Customer.tenantId holds integer values"]);
    }
  });

  it("at mint time: a policy wrapped by schemaCheckedPolicy mints nothing that does not fit", () => {
    const mint = createMint({ issuer: "checked", clock: createManualClock(0), policy: schemaCheckedPolicy(SCHEMA, (p) => (p.id === "bad" ? BAD : AGENT_GRANT)) });
    expect(mint.issue({ id: "good" }).grant).toEqual(AGENT_GRANT);
    expect(() => mint.issue({ id: "bad" })).toThrow(GrantSchemaMismatch);
  });

  it("at resource creation: createSqlDatabase refuses grants that do not fit its schema", () => {
    expect(() => createSqlDatabase({ sqlite: {} as never, schema: SCHEMA, grants: [BAD] })).toThrow(GrantSchemaMismatch);
  });
});

describe.each(ENGINES)("introspection on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "models and fields from the live database", () => {
    let h: Harness;
    beforeAll(async () => {
      h = await engine.open();
      await h.reset();
      await h.exec("CREATE TABLE pairs (a integer NOT NULL, b integer NOT NULL, PRIMARY KEY (a, b))");
      await h.exec("CREATE TABLE docs (id integer PRIMARY KEY, title text NOT NULL, body bytea, score double precision)");
      await h.exec("CREATE TABLE keyless (note text)");
    });
    afterAll(async () => {
      await h.close();
    });

    it("reads every table with a one-column key, and lists what it cannot express", async () => {
      const { schema, skipped } = await introspectSchema(h.connection);
      const identity = engine.name === "postgres" ? { generated: true } : {};
      expect(schema).toEqual({
        customers: {
          table: "customers",
          primaryKey: "id",
          fields: {
            id: { type: "integer", ...identity },
            tenant_id: { type: "integer" },
            name: { type: "text" },
            email: { type: "text", nullable: true },
            vip: { type: "boolean" },
            secret_note: { type: "text", nullable: true },
          },
        },
        docs: { table: "docs", primaryKey: "id", fields: { id: { type: "integer" }, title: { type: "text" }, score: { type: "real", nullable: true } } },
        orders: {
          table: "orders",
          primaryKey: "id",
          fields: { id: { type: "integer", ...identity }, tenant_id: { type: "integer" }, customer_id: { type: "integer" }, total: { type: "real" }, status: { type: "text" } },
        },
        tasks: { table: "tasks", primaryKey: "id", fields: { id: { type: "integer" }, weight: { type: "integer" }, rank: { type: "integer" } } },
      });
      expect(skipped).toEqual([
        { table: "docs", column: "body", reason: "its type bytea is not one agentcap reads (integer, real, text, boolean)" },
        { table: "keyless", reason: "it has no primary key" },
        { table: "pairs", reason: "its primary key spans several columns" },
      ]);
      // The introspected schema serves queries as it is, and grants are checked against it.
      const grant: Grant = { db: [{ model: "customers", ops: ["read"], scope: { tenant_id: 42 } }] };
      const db = createSqlDatabase({ schema, ...h.connection, grants: [grant] });
      const cap = createMint({ issuer: "introspected", clock: createManualClock(0), policy: () => grant }).issue({ id: "a" });
      expect(await db.read(cap as DbCapability<"read">, { model: "customers", fields: ["id", "vip"], where: { id: 1 } })).toEqual([{ id: 1, vip: true }]);
      expect(() => createSqlDatabase({ schema, ...h.connection, grants: [{ db: [{ model: "customers", ops: ["read"], fields: ["tenantId"] }] }] })).toThrow(
        /customers has no field tenantId/,
      );
    });

    it("turns each one-column foreign key into a relation each way, and lists the keys it cannot", async () => {
      await h.exec("CREATE TABLE authors (id integer PRIMARY KEY, name text NOT NULL)");
      await h.exec("CREATE TABLE books (id integer PRIMARY KEY, author_id integer NOT NULL REFERENCES authors (id), editor_id integer REFERENCES authors, title text NOT NULL)");
      await h.exec("CREATE TABLE notes (id integer PRIMARY KEY, pa integer, pb integer, book integer REFERENCES books (id), FOREIGN KEY (pa, pb) REFERENCES pairs (a, b))");
      const { schema, skipped } = await introspectSchema(h.connection);
      expect(schema.books?.relations).toEqual({
        author: { model: "authors", from: "author_id", to: "id" },
        editor: { model: "authors", from: "editor_id", to: "id" },
        notes: { model: "notes", from: "id", to: "book", many: true },
      });
      expect(schema.authors?.relations).toEqual({
        books_by_author_id: { model: "books", from: "id", to: "author_id", many: true },
        books_by_editor_id: { model: "books", from: "id", to: "editor_id", many: true },
      });
      // A column named as the relation it would make keeps its name; that side of the key is listed as skipped.
      expect(schema.notes?.relations).toBeUndefined();
      expect(skipped).toContainEqual({ table: "notes", column: "book", reason: "its foreign key would make a relation book of notes, a name already taken" });
      // The key over two columns reaches pairs, which is no model: nothing to relate.
      expect(skipped.filter((s) => s.table === "notes")).toHaveLength(1);
      // The relations make a valid schema that serves includes.
      expect(() => createSqlDatabase({ schema, ...h.connection })).not.toThrow();
      await h.exec("DROP TABLE notes");
      await h.exec("DROP TABLE books");
      await h.exec("DROP TABLE authors");
    });
  });
});
