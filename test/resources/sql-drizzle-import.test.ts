import Database from "better-sqlite3";
import { relations, sql } from "drizzle-orm";
import * as my from "drizzle-orm/mysql-core";
import * as pg from "drizzle-orm/pg-core";
import * as lite from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import { InvalidInput, UnmappableSchema } from "../../src/index.ts";
import { createSqlDatabase } from "../../src/resources/sql/database.ts";
import { schemaFromDrizzle } from "../../src/resources/sql/drizzle-import.ts";

/*
 * What each Drizzle declaration becomes, without a database: every column
 * kind of sqlite-core and pg-core mapped to the values the database holds,
 * or refused by table and column; keys, relations, casing, what is left out,
 * and every malformed input refused with a typed error. The same schema on
 * real databases is in sql-drizzle.test.ts.
 */

/** The problems of an UnmappableSchema (failing the test if the import succeeds or fails otherwise). */
async function problemsOf(definitions: Readonly<Record<string, unknown>>, options?: Parameters<typeof schemaFromDrizzle>[1]): Promise<readonly string[]> {
  const error = await schemaFromDrizzle(definitions, options).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UnmappableSchema);
  return (error as UnmappableSchema).problems;
}

describe("Drizzle columns agentcap reads", () => {
  it("map SQLite's integers, booleans, timestamps, reals, texts, enums and JSON to the values stored", async () => {
    const t = lite.sqliteTable("kinds", {
      id: lite.integer().primaryKey(),
      count: lite.integer("the_count").notNull(),
      flag: lite.integer({ mode: "boolean" }),
      at: lite.integer({ mode: "timestamp" }).notNull(),
      atMs: lite.integer({ mode: "timestamp_ms" }),
      ratio: lite.real().default(1.5),
      amount: lite.numeric({ mode: "number" }),
      label: lite.text().unique(),
      status: lite.text({ enum: ["a", "b"] }).notNull(),
      doc: lite.text({ mode: "json" }),
      twice: lite.integer().generatedAlwaysAs(sql`the_count * 2`),
    });
    const { schema, skipped } = await schemaFromDrizzle({ kinds: t });
    expect(schema).toEqual({
      kinds: {
        table: "kinds",
        primaryKey: "id",
        fields: {
          id: { type: "integer" },
          count: { type: "integer", column: "the_count" },
          flag: { type: "boolean", nullable: true },
          at: { type: "integer" },
          atMs: { type: "integer", nullable: true },
          ratio: { type: "real", nullable: true },
          amount: { type: "real", nullable: true },
          label: { type: "text", nullable: true },
          status: { type: "text" },
          doc: { type: "text", nullable: true },
          twice: { type: "integer", nullable: true, generated: true },
        },
      },
    });
    expect(skipped).toEqual([]);
    expect(() => createSqlDatabase({ schema, sqlite: new Database(":memory:") })).not.toThrow();
  });

  it("map Postgres's integers, serials, identities, reals, texts, uuids, enums and booleans", async () => {
    const mood = pg.pgEnum("mood", ["ok", "bad"]);
    const t = pg.pgTable("kinds", {
      id: pg.serial().primaryKey(),
      small: pg.smallint(),
      small2: pg.smallserial(),
      count: pg.integer().notNull().generatedByDefaultAsIdentity(),
      big: pg.bigint({ mode: "number" }),
      big2: pg.bigserial({ mode: "number" }),
      ratio: pg.real(),
      wide: pg.doublePrecision(),
      amount: pg.numeric({ mode: "number" }),
      label: pg.text(),
      name: pg.varchar({ length: 20 }),
      code: pg.char({ length: 2 }),
      ref: pg.uuid().defaultRandom(),
      mood: mood(),
      flag: pg.boolean().notNull(),
      twice: pg.integer().generatedAlwaysAs(sql`1`),
    });
    const { schema } = await schemaFromDrizzle({ mood, kinds: t });
    expect(schema.kinds?.fields).toEqual({
      id: { type: "integer", generated: true },
      small: { type: "integer", nullable: true },
      small2: { type: "integer", generated: true },
      count: { type: "integer", generated: true },
      big: { type: "integer", nullable: true },
      big2: { type: "integer", generated: true },
      ratio: { type: "real", nullable: true },
      wide: { type: "real", nullable: true },
      amount: { type: "real", nullable: true },
      label: { type: "text", nullable: true },
      name: { type: "text", nullable: true },
      code: { type: "text", nullable: true },
      ref: { type: "text", nullable: true },
      mood: { type: "text", nullable: true },
      flag: { type: "boolean" },
      twice: { type: "integer", nullable: true, generated: true },
    });
  });
});

describe("Drizzle columns agentcap cannot read faithfully", () => {
  it("are refused on SQLite, every one named by table and column in one error", async () => {
    const point = lite.customType<{ data: string }>({ dataType: () => "point" });
    const t = lite.sqliteTable("odd", {
      id: lite.integer().primaryKey(),
      exact: lite.numeric(),
      huge: lite.numeric({ mode: "bigint" }),
      big: lite.blob({ mode: "bigint" }),
      raw: lite.blob(),
      doc: lite.blob({ mode: "json" }),
      where: point("at"),
    });
    const problems = await problemsOf({ odd: t });
    expect(problems).toEqual([
      `table odd, column exact: Drizzle reads its values as strings (numeric mode 'string') to keep their precision, where agentcap would read numbers; leave it out (leaveOut: { odd: ["exact"] }) or declare it otherwise`,
      `table odd, column huge: Drizzle reads its values as JavaScript bigints (mode 'bigint'), beyond agentcap's integers (at most 2^53 - 1); leave it out (leaveOut: { odd: ["huge"] }) or declare it otherwise`,
      `table odd, column big: Drizzle reads its values as JavaScript bigints (mode 'bigint'), beyond agentcap's integers (at most 2^53 - 1); leave it out (leaveOut: { odd: ["big"] }) or declare it otherwise`,
      `table odd, column raw: its type blob (SQLiteBlobBuffer) is not one agentcap reads (integer, real, text, boolean); leave it out (leaveOut: { odd: ["raw"] }) or declare it otherwise`,
      `table odd, column doc: its type blob (SQLiteBlobJson) is not one agentcap reads (integer, real, text, boolean); leave it out (leaveOut: { odd: ["doc"] }) or declare it otherwise`,
      `table odd, column at (field where): its type point (SQLiteCustomColumn) is not one agentcap reads (integer, real, text, boolean); leave it out (leaveOut: { odd: ["where"] }) or declare it otherwise`,
    ]);
    const { schema, skipped } = await schemaFromDrizzle({ odd: t }, { leaveOut: { odd: ["exact", "huge", "big", "raw", "doc", "where"] } });
    expect(schema).toEqual({ odd: { table: "odd", primaryKey: "id", fields: { id: { type: "integer" } } } });
    expect(skipped.map((s) => s.column)).toEqual(["exact", "huge", "big", "raw", "doc", "at"]);
  });

  it("are refused on Postgres: bigints, string numerics, dates and times, JSON, arrays, network and custom types", async () => {
    const t = pg.pgTable("odd", {
      id: pg.integer().primaryKey(),
      big: pg.bigint({ mode: "bigint" }),
      big2: pg.bigserial({ mode: "bigint" }),
      exact: pg.numeric(),
      huge: pg.numeric({ mode: "bigint" }),
      at: pg.timestamp(),
      atText: pg.timestamp({ mode: "string", withTimezone: true }),
      day: pg.date(),
      time: pg.time(),
      span: pg.interval(),
      doc: pg.json(),
      docb: pg.jsonb(),
      tags: pg.text().array(),
      ip: pg.inet(),
      money: pg.customType<{ data: number }>({ dataType: () => "money" })(),
    });
    const problems = await problemsOf({ odd: t });
    const named = problems.map((p) => /^table odd, column (\w+): (.*?);/.exec(p)?.slice(1));
    expect(named).toEqual([
      ["big", "Drizzle reads its values as JavaScript bigints (mode 'bigint'), beyond agentcap's integers (at most 2^53 - 1)"],
      ["big2", "Drizzle reads its values as JavaScript bigints (mode 'bigint'), beyond agentcap's integers (at most 2^53 - 1)"],
      ["exact", "Drizzle reads its values as strings (numeric mode 'string') to keep their precision, where agentcap would read numbers"],
      ["huge", "Drizzle reads its values as JavaScript bigints (mode 'bigint'), beyond agentcap's integers (at most 2^53 - 1)"],
      ["at", "its type timestamp (PgTimestamp) is not one agentcap reads (integer, real, text, boolean)"],
      ["atText", "its type timestamp with time zone (PgTimestampString) is not one agentcap reads (integer, real, text, boolean)"],
      ["day", "its type date (PgDateString) is not one agentcap reads (integer, real, text, boolean)"],
      ["time", "its type time (PgTime) is not one agentcap reads (integer, real, text, boolean)"],
      ["span", "its type interval (PgInterval) is not one agentcap reads (integer, real, text, boolean)"],
      ["doc", "its type json (PgJson) is not one agentcap reads (integer, real, text, boolean)"],
      ["docb", "its type jsonb (PgJsonb) is not one agentcap reads (integer, real, text, boolean)"],
      ["tags", "its type text[] (PgArray) is not one agentcap reads (integer, real, text, boolean)"],
      ["ip", "its type inet (PgInet) is not one agentcap reads (integer, real, text, boolean)"],
      ["money", "its type money (PgCustomColumn) is not one agentcap reads (integer, real, text, boolean)"],
    ]);
  });
});

describe("Drizzle keys", () => {
  it("take the one-column primary key of a column or of the table's primaryKey(); refuse none, several, or one left out", async () => {
    const keyed = lite.sqliteTable("keyed", { code: lite.text().notNull(), name: lite.text() }, (t) => [lite.primaryKey({ columns: [t.code] })]);
    expect((await schemaFromDrizzle({ keyed })).schema.keyed?.primaryKey).toBe("code");
    const pair = lite.sqliteTable("pair", { a: lite.integer().notNull(), b: lite.integer().notNull() }, (t) => [lite.primaryKey({ columns: [t.a, t.b] })]);
    const keyless = pg.pgTable("keyless", { a: pg.integer() });
    expect(await problemsOf({ pair })).toEqual(["table pair: its primary key spans several columns (a, b)"]);
    expect(await problemsOf({ keyless })).toEqual(["table keyless: it has no primary key"]);
    expect(await problemsOf({ keyed }, { leaveOut: { keyed: ["code"] } })).toEqual(["table keyed: its primary key code is left out"]);
  });

  it("name each model by its key among the definitions, and refuse names that are not identifiers", async () => {
    const people = lite.sqliteTable("app_users", { id: lite.integer().primaryKey() });
    expect((await schemaFromDrizzle({ people })).schema).toEqual({ people: { table: "app_users", primaryKey: "id", fields: { id: { type: "integer" } } } });
    const spaced = lite.sqliteTable("user list", { id: lite.integer().primaryKey(), "first name": lite.text() });
    const problems = await problemsOf({ spaced });
    expect(problems[0]).toBe("table user list (model spaced): its name is not an identifier (letters, digits, _; at most 63)");
    expect(problems[1]).toMatch(/^table user list \(model spaced\), column first name: its key or name is not an identifier/);
  });
});

describe("Drizzle relations()", () => {
  const users = pg.pgTable("users", { id: pg.integer().primaryKey(), name: pg.text() });
  const profiles = pg.pgTable("profiles", { id: pg.integer().primaryKey(), userId: pg.integer("user_id").notNull().unique() });
  const posts = pg.pgTable("posts", { id: pg.integer().primaryKey(), authorId: pg.integer("author_id").notNull(), reviewerId: pg.integer("reviewer_id") });

  it("become relations, each side resolved as Drizzle's own queries resolve it (named relations, the side without fields)", async () => {
    const definitions = {
      users,
      profiles,
      posts,
      usersRelations: relations(users, ({ one, many }) => ({ profile: one(profiles), written: many(posts, { relationName: "author" }), reviewed: many(posts, { relationName: "reviewer" }) })),
      profilesRelations: relations(profiles, ({ one }) => ({ user: one(users, { fields: [profiles.userId], references: [users.id] }) })),
      postsRelations: relations(posts, ({ one }) => ({
        author: one(users, { fields: [posts.authorId], references: [users.id], relationName: "author" }),
        reviewer: one(users, { fields: [posts.reviewerId], references: [users.id], relationName: "reviewer" }),
      })),
    };
    const { schema } = await schemaFromDrizzle(definitions);
    expect(schema.users?.relations).toEqual({
      profile: { model: "profiles", from: "id", to: "userId" },
      written: { model: "posts", from: "id", to: "authorId", many: true },
      reviewed: { model: "posts", from: "id", to: "reviewerId", many: true },
    });
    expect(schema.profiles?.relations).toEqual({ user: { model: "users", from: "userId", to: "id" } });
    expect(schema.posts?.relations).toEqual({ author: { model: "users", from: "authorId", to: "id" }, reviewer: { model: "users", from: "reviewerId", to: "id" } });
    // A valid schema: the relations reach fields of the same types.
    expect(() => createSqlDatabase({ schema, sqlite: new Database(":memory:") })).not.toThrow();
  });

  it("that agentcap cannot follow are refused, each named; one left out is listed as skipped", async () => {
    const pair = pg.pgTable("pair", { a: pg.integer().notNull(), b: pg.integer().notNull(), name: pg.text().primaryKey() });
    const tags = pg.pgTable("tags", { id: pg.text().primaryKey() });
    const definitions = {
      users,
      posts,
      pair,
      usersRelations: relations(users, ({ one, many }) => ({
        // Several columns, a table not given, no reverse side, a field's name, and two types that never compare equal.
        pairs: one(pair, { fields: [users.id, users.id], references: [pair.a, pair.b] }),
        tags: one(tags, { fields: [users.name], references: [tags.id] }),
        posts: many(posts),
        name: one(posts, { fields: [users.id], references: [posts.authorId] }),
        label: one(pair, { fields: [users.id], references: [pair.name] }),
      })),
    };
    const problems = await problemsOf(definitions);
    expect(problems).toEqual([
      `table users, relation pairs: it joins several columns (id, id); leave it out (leaveOut: { users: ["pairs"] }) or declare it otherwise`,
      `table users, relation tags: it relates to table tags, which is not among the definitions given; leave it out (leaveOut: { users: ["tags"] }) or declare it otherwise`,
      `table users, relation posts: There is not enough information to infer relation "users.posts"; leave it out (leaveOut: { users: ["posts"] }) or declare it otherwise`,
      `table users, relation name: its name is also a field's of users, and included rows are returned under the relation's name; leave it out (leaveOut: { users: ["name"] }) or declare it otherwise`,
      `table users, relation label: it joins users.id (integer) to pair.name (text); the types must be the same; leave it out (leaveOut: { users: ["label"] }) or declare it otherwise`,
    ]);
    const { schema, skipped } = await schemaFromDrizzle(definitions, { leaveOut: { users: ["pairs", "tags", "posts", "name", "label"] } });
    expect(schema.users?.relations).toBeUndefined();
    // A name leaves out the column and the relation of that name.
    expect(skipped.map((s) => s.column)).toEqual(["name", "pairs", "tags", "posts", "name", "label"]);
    // A relation on a column left out cannot be kept.
    const withPosts = { users, posts, r: relations(posts, ({ one }) => ({ author: one(users, { fields: [posts.authorId], references: [users.id] }) })) };
    expect(await problemsOf(withPosts, { leaveOut: { posts: ["authorId"] } })).toEqual([
      `table posts, relation author: it joins on posts.authorId, which is not imported; leave it out (leaveOut: { posts: ["author"] }) or declare it otherwise`,
    ]);
  });
});

describe("Drizzle casing", () => {
  it("names the columns declared without a name as the application's casing does, and leaves named ones be", async () => {
    const t = lite.sqliteTable("t", { id: lite.integer().primaryKey(), createdBy: lite.text(), owner_name: lite.text(), named: lite.text("Explicit_Name") });
    const fields = async (casing?: "snake_case" | "camelCase") => (await schemaFromDrizzle({ t }, casing === undefined ? {} : { casing })).schema.t?.fields;
    expect(await fields()).toMatchObject({ createdBy: { type: "text", nullable: true }, owner_name: { type: "text", nullable: true }, named: { column: "Explicit_Name" } });
    expect(await fields("snake_case")).toMatchObject({ createdBy: { column: "created_by" }, owner_name: { type: "text", nullable: true }, named: { column: "Explicit_Name" } });
    expect(await fields("camelCase")).toMatchObject({ createdBy: { type: "text", nullable: true }, owner_name: { column: "ownerName" }, named: { column: "Explicit_Name" } });
  });
});

describe("Drizzle definitions", () => {
  const users = pg.pgTable("users", { id: pg.integer().primaryKey() });

  it("pass over what is not a table or relations (enums, sequences, schemas, other exports) and list views as skipped", async () => {
    const view = pg.pgView("active_users").as((qb) => qb.select().from(users));
    const definitions = { users, mood: pg.pgEnum("mood", ["a"]), seq: pg.pgSequence("seq"), app: pg.pgSchema("app"), view, validator: { parse: () => null }, version: 3 };
    expect(await schemaFromDrizzle(definitions)).toEqual({
      schema: { users: { table: "users", primaryKey: "id", fields: { id: { type: "integer" } } } },
      skipped: [{ table: "active_users", reason: "it is a view; agentcap reads tables" }],
    });
  });

  it("refuse another dialect's tables, and one table name given twice (as in two Postgres schemas)", async () => {
    const mysql = my.mysqlTable("accounts", { id: my.int().primaryKey() });
    expect(await problemsOf({ users, mysql })).toEqual(["mysql: a MySqlTable, and agentcap serves SQLite and Postgres"]);
    const archived = pg.pgSchema("archive").table("users", { id: pg.integer().primaryKey() });
    expect(await problemsOf({ users, archived })).toEqual([
      "table users is given as users and archived (schema archive); agentcap names tables without their schema, so each name may be given once",
    ]);
  });

  it.each([
    ["no definitions", null, undefined, /takes the application's Drizzle definitions/],
    ["a list", [users], undefined, /takes the application's Drizzle definitions/],
    ["no table", { mood: pg.pgEnum("m", ["a"]) }, undefined, /found no Drizzle table of SQLite \(sqlite-core\) or Postgres \(pg-core\)/],
    ["both dialects", { users, notes: lite.sqliteTable("notes", { id: lite.integer().primaryKey() }) }, undefined, /mix SQLite and Postgres tables/],
    ["options that are not an object", { users }, "snake_case", /options must be an object/],
    ["an unknown option", { users }, { casing: "snake_case", schema: "app" }, /options\.schema is not an option; expected casing, leaveOut/],
    ["a casing Drizzle does not take", { users }, { casing: "kebab-case" }, /options\.casing must be "snake_case" or "camelCase"/],
    ["leaveOut not a record of lists", { users }, { leaveOut: { users: "id" } }, /options\.leaveOut must map model names to lists/],
    ["leaveOut naming what is not there", { users }, { leaveOut: { users: ["nope"], posts: ["id"] } }, /leaveOut names what is not there: users has no column or relation nope; posts is not a table among the definitions/],
  ])("refuse %s with InvalidInput", async (_, definitions, options, message) => {
    const call = schemaFromDrizzle(definitions as never, options as never);
    await expect(call).rejects.toThrow(InvalidInput);
    await expect(call).rejects.toThrow(message);
  });
});
