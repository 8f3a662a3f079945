import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidInput } from "../../src/index.ts";
import { createSqlDatabase, type SqlDatabaseOptions } from "../../src/resources/sql/database.ts";
import type { SchemaSpec } from "../../src/resources/sql/schema.ts";

/* The application's configuration: every mistake in a schema or in the options is an InvalidInput naming the setting. */

const sqlite = new Database(":memory:");
afterAll(() => {
  sqlite.close();
});

const customer = { table: "customers", primaryKey: "id", fields: { id: { type: "integer" }, name: { type: "text" } } } as const;
const withModel = (model: unknown): SchemaSpec => ({ Customer: model }) as SchemaSpec;
const withField = (field: unknown): SchemaSpec => withModel({ ...customer, fields: { ...customer.fields, extra: field } });
const withRelation = (relation: unknown): SchemaSpec => withModel({ ...customer, relations: { self: relation } });

const BAD: readonly { readonly name: string; readonly options: unknown; readonly message: RegExp }[] = [
  { name: "no models", options: { sqlite, schema: {} }, message: /declare at least one model/ },
  { name: "schema that is not an object", options: { sqlite, schema: "customers" }, message: /models must be an object/ },
  { name: "model name that is not an identifier", options: { sqlite, schema: { "Customer; DROP": customer } }, message: /model name must be an identifier/ },
  { name: "table name with SQL", options: { sqlite, schema: withModel({ ...customer, table: "customers; DROP TABLE x" }) }, message: /models\.Customer\.table must be an identifier/ },
  { name: "table name with a schema prefix", options: { sqlite, schema: withModel({ ...customer, table: "public.customers" }) }, message: /table must be an identifier/ },
  { name: "column name with a quote", options: { sqlite, schema: withField({ type: "text", column: 'x"y' }) }, message: /fields\.extra\.column must be an identifier/ },
  { name: "field named __proto__", options: { sqlite, schema: withModel(JSON.parse('{"table":"t","primaryKey":"id","fields":{"id":{"type":"integer"},"__proto__":{"type":"text"}}}')) }, message: /must not be __proto__/ },
  { name: "unknown field type", options: { sqlite, schema: withField({ type: "varchar" }) }, message: /type must be one of integer, real, text, boolean, got "varchar"/ },
  { name: "nullable that is not a boolean", options: { sqlite, schema: withField({ type: "text", nullable: "yes" }) }, message: /nullable must be a boolean/ },
  { name: "generated that is not a boolean", options: { sqlite, schema: withField({ type: "integer", generated: 1 }) }, message: /generated must be a boolean/ },
  { name: "unknown field setting", options: { sqlite, schema: withField({ type: "text", default: "x" }) }, message: /fields\.extra\.default is not a setting/ },
  { name: "unknown model setting", options: { sqlite, schema: withModel({ ...customer, where: "tenant_id = 42" }) }, message: /models\.Customer\.where is not a setting/ },
  { name: "no fields", options: { sqlite, schema: withModel({ ...customer, fields: {} }) }, message: /must declare at least one field/ },
  { name: "primary key that is not a field", options: { sqlite, schema: withModel({ ...customer, primaryKey: "uuid" }) }, message: /primaryKey names uuid, which is not one of its fields/ },
  { name: "two fields on one column", options: { sqlite, schema: withField({ type: "text", column: "name" }) }, message: /maps two fields to column name/ },
  { name: "unknown limit", options: { sqlite, schema: { Customer: customer }, limits: { maxQueries: 1 } }, message: /limits\.maxQueries is not a limit/ },
  { name: "zero limit", options: { sqlite, schema: { Customer: customer }, limits: { maxRows: 0 } }, message: /limits\.maxRows must be a whole number, 1 or more/ },
  { name: "fractional limit", options: { sqlite, schema: { Customer: customer }, limits: { maxWriteRows: 2.5 } }, message: /limits\.maxWriteRows must be a whole number/ },
  { name: "no database", options: { schema: { Customer: customer } }, message: /needs a database: \{ sqlite: .* \} or \{ postgres: .* \}/ },
  { name: "two databases", options: { sqlite, postgres: sqlite, schema: { Customer: customer } }, message: /one database: sqlite or postgres, not both/ },
  { name: "a path instead of a database", options: { sqlite: "/tmp/app.db", schema: { Customer: customer } }, message: /sqlite must be an open better-sqlite3 Database/ },
  { name: "a connection string instead of a pool", options: { postgres: "postgres://localhost/app", schema: { Customer: customer } }, message: /postgres must be a node-postgres \(pg\) Pool/ },
  { name: "no schema", options: { sqlite }, message: /models must be an object/ },
  { name: "relation to an unknown model", options: { sqlite, schema: withRelation({ model: "Order", from: "id", to: "id" }) }, message: /relations\.self\.model names Order, which is not a model/ },
  { name: "relation from an unknown field", options: { sqlite, schema: withRelation({ model: "Customer", from: "parentId", to: "id" }) }, message: /relations\.self\.from names parentId, which is not a field of Customer/ },
  { name: "relation to an unknown field", options: { sqlite, schema: withRelation({ model: "Customer", from: "id", to: "parentId" }) }, message: /relations\.self\.to names parentId, which is not a field of Customer/ },
  { name: "relation between fields of different types", options: { sqlite, schema: withRelation({ model: "Customer", from: "id", to: "name" }) }, message: /relates Customer\.id \(integer\) to Customer\.name \(text\); the types must be the same/ },
  { name: "relation named as a field", options: { sqlite, schema: withModel({ ...customer, relations: { name: { model: "Customer", from: "id", to: "id" } } }) }, message: /relations\.name: Customer has a field of that name/ },
  { name: "relation with an unknown setting", options: { sqlite, schema: withRelation({ model: "Customer", from: "id", to: "id", on: "id = id" }) }, message: /relations\.self\.on is not a setting/ },
  { name: "relation whose many is not a boolean", options: { sqlite, schema: withRelation({ model: "Customer", from: "id", to: "id", many: "yes" }) }, message: /relations\.self\.many must be a boolean/ },
  { name: "relation named __proto__", options: { sqlite, schema: withModel(JSON.parse('{"table":"t","primaryKey":"id","fields":{"id":{"type":"integer"}},"relations":{"__proto__":{"model":"Customer","from":"id","to":"id"}}}')) }, message: /must not be __proto__/ },
];

describe("SQL resource configuration", () => {
  it.each(BAD)("refuses $name", ({ options, message }) => {
    const create = () => createSqlDatabase(options as SqlDatabaseOptions);
    expect(create).toThrow(InvalidInput);
    expect(create).toThrow(message);
  });

  it("takes no database or schema from a polluted Object.prototype", () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.sqlite = sqlite;
    try {
      const options: unknown = { schema: { Customer: customer } };
      expect(() => createSqlDatabase(options as SqlDatabaseOptions)).toThrow(/needs a database/);
    } finally {
      delete proto.sqlite;
    }
  });

  it("accepts a valid schema", () => {
    expect(() => createSqlDatabase({ sqlite, schema: { Customer: customer } })).not.toThrow();
  });
});
