import Database from "better-sqlite3";
import { asc, relations, sql } from "drizzle-orm";
import { drizzle as drizzleSqlite } from "drizzle-orm/better-sqlite3";
import { drizzle as drizzlePostgres } from "drizzle-orm/node-postgres";
import * as pg from "drizzle-orm/pg-core";
import * as lite from "drizzle-orm/sqlite-core";
import { generateDrizzleJson, generateMigration, generateSQLiteDrizzleJson, generateSQLiteMigration } from "drizzle-kit/api";
import type { SqlConnection } from "../../src/resources/sql/database.ts";
import { createTestSchema, databaseUrl, postgresSkipReason } from "../support/postgres.ts";

/*
 * A small multi-tenant application as it declares itself to Drizzle: tenants,
 * their users and the notes users write, with relations(). The tables are made
 * by drizzle-kit from these very definitions (the statements its `generate`
 * writes), the rows inserted by drizzle-orm, and the application's own
 * relational queries read them back. Columns are declared without names and
 * named by Drizzle's snake_case casing, as many applications do.
 *
 * Postgres tables live in a pgSchema named after the test's own schema, so
 * drizzle-kit qualifies every statement with it; the connection's search
 * path is that schema, where agentcap and introspection find them.
 */

export const CASING = "snake_case" as const;
const ENUM = ["draft", "published"] as const;

export function sqliteDefinitions() {
  const tenants = lite.sqliteTable("tenants", { id: lite.text().primaryKey(), name: lite.text().notNull() });
  const users = lite.sqliteTable("users", {
    id: lite.integer().primaryKey({ autoIncrement: true }),
    tenantId: lite.text().notNull().references(() => tenants.id),
    email: lite.text().notNull().unique(),
    admin: lite.integer({ mode: "boolean" }).notNull().default(false),
    joinedAt: lite.integer({ mode: "timestamp" }).notNull().default(sql`(unixepoch())`),
  });
  const notes = lite.sqliteTable("notes", {
    id: lite.integer().primaryKey({ autoIncrement: true }),
    tenantId: lite.text().notNull().references(() => tenants.id),
    authorId: lite.integer().notNull().references(() => users.id),
    title: lite.text().notNull(),
    body: lite.text(),
    status: lite.text({ enum: ENUM }).notNull().default("draft"),
    score: lite.real(),
    meta: lite.text({ mode: "json" }).$type<{ tags: string[] }>(),
    attachment: lite.blob({ mode: "buffer" }),
  });
  const tenantsRelations = relations(tenants, ({ many }) => ({ users: many(users), notes: many(notes) }));
  const usersRelations = relations(users, ({ one, many }) => ({ tenant: one(tenants, { fields: [users.tenantId], references: [tenants.id] }), notes: many(notes) }));
  const notesRelations = relations(notes, ({ one }) => ({
    tenant: one(tenants, { fields: [notes.tenantId], references: [tenants.id] }),
    author: one(users, { fields: [notes.authorId], references: [users.id] }),
  }));
  return { tenants, users, notes, tenantsRelations, usersRelations, notesRelations };
}

export function postgresDefinitions(schemaName: string) {
  const ns = pg.pgSchema(schemaName);
  const noteStatus = ns.enum("note_status", ENUM);
  const tenants = ns.table("tenants", { id: pg.text().primaryKey(), name: pg.text().notNull() });
  const users = ns.table("users", {
    id: pg.integer().primaryKey().generatedAlwaysAsIdentity(),
    tenantId: pg.text().notNull().references(() => tenants.id),
    email: pg.varchar({ length: 200 }).notNull().unique(),
    admin: pg.boolean().notNull().default(false),
    joinedAt: pg.timestamp().notNull().defaultNow(),
  });
  const notes = ns.table("notes", {
    id: pg.serial().primaryKey(),
    publicId: pg.uuid().notNull().defaultRandom(),
    tenantId: pg.text().notNull().references(() => tenants.id),
    authorId: pg.integer().notNull().references(() => users.id),
    title: pg.text().notNull(),
    body: pg.text(),
    status: noteStatus().notNull().default("draft"),
    score: pg.doublePrecision(),
    meta: pg.jsonb().$type<{ tags: string[] }>(),
  });
  const tenantsRelations = relations(tenants, ({ many }) => ({ users: many(users), notes: many(notes) }));
  const usersRelations = relations(users, ({ one, many }) => ({ tenant: one(tenants, { fields: [users.tenantId], references: [tenants.id] }), notes: many(notes) }));
  const notesRelations = relations(notes, ({ one }) => ({
    tenant: one(tenants, { fields: [notes.tenantId], references: [tenants.id] }),
    author: one(users, { fields: [notes.authorId], references: [users.id] }),
  }));
  return { ns, noteStatus, tenants, users, notes, tenantsRelations, usersRelations, notesRelations };
}

/** A note as the application reads it through Drizzle's relational query, with its author. */
export interface DrizzleNote {
  readonly id: number;
  readonly tenantId: string;
  readonly title: string;
  readonly status: string;
  readonly score: number | null;
  readonly meta: { tags: string[] } | null;
  readonly author: { readonly email: string; readonly admin: boolean; readonly joinedAt: Date } | null;
}

/** Ada and Bob are acme's, Gus is globex's. */
export const USERS = [
  { tenantId: "acme", email: "ada@acme.test", admin: true },
  { tenantId: "acme", email: "bob@acme.test", admin: false },
  { tenantId: "globex", email: "gus@globex.test", admin: false },
] as const;

export interface DrizzleWorld {
  readonly name: "sqlite" | "postgres";
  readonly definitions: Readonly<Record<string, unknown>>;
  /** What agentcap cannot map on this engine, by model, with the words of the refusal. */
  readonly unmappable: Readonly<Record<string, readonly string[]>>;
  readonly connection: SqlConnection;
  /** User ids by email, as the database assigned them. */
  readonly userIds: Readonly<Record<(typeof USERS)[number]["email"], number>>;
  /** Note ids by title. */
  readonly noteIds: Readonly<Record<NoteTitle, number>>;
  /** Every note with its author, read by the application through Drizzle. */
  notes(): Promise<DrizzleNote[]>;
  close(): Promise<void>;
}

export interface DrizzleEngine {
  readonly name: "sqlite" | "postgres";
  readonly skipReason: string | null;
  open(): Promise<DrizzleWorld>;
}

type NoteTitle = "Plan" | "Idea" | "Secret" | "Misfiled";

type Seedable = {
  insert(table: never): { values(rows: never): { returning(): PromiseLike<Record<string, unknown>[]> } };
};

/** Tenants, users and notes, inserted by Drizzle; the ids the database gave them. */
async function seed(orm: Seedable, t: { tenants: unknown; users: unknown; notes: unknown }) {
  const insert = (table: unknown, rows: unknown) => orm.insert(table as never).values(rows as never).returning();
  await insert(t.tenants, [{ id: "acme", name: "Acme" }, { id: "globex", name: "Globex" }]);
  const users = await insert(t.users, USERS);
  const userIds = Object.fromEntries(users.map((u) => [u.email as string, u.id as number])) as DrizzleWorld["userIds"];
  const [ada, bob, gus] = [userIds["ada@acme.test"], userIds["bob@acme.test"], userIds["gus@globex.test"]];
  const notes = await insert(t.notes, [
    { tenantId: "acme", authorId: ada, title: "Plan", status: "published", score: 4.5, meta: { tags: ["q3"] } },
    { tenantId: "acme", authorId: bob, title: "Idea", body: "half-formed" },
    { tenantId: "globex", authorId: gus, title: "Secret", status: "published" },
    // Filed under acme by a user of globex: its author is out of acme's reach.
    { tenantId: "acme", authorId: gus, title: "Misfiled" },
  ]);
  return { userIds, noteIds: Object.fromEntries(notes.map((n) => [n.title as string, n.id as number])) as DrizzleWorld["noteIds"] };
}

const plainNote = (n: DrizzleNote): DrizzleNote => ({
  id: n.id,
  tenantId: n.tenantId,
  title: n.title,
  status: n.status,
  score: n.score,
  meta: n.meta,
  author: n.author === null ? null : { email: n.author.email, admin: n.author.admin, joinedAt: n.author.joinedAt },
});

const sqliteEngine: DrizzleEngine = {
  name: "sqlite",
  skipReason: null,
  open: async () => {
    const database = new Database(":memory:");
    database.pragma("foreign_keys = ON");
    const definitions = sqliteDefinitions();
    for (const statement of await generateSQLiteMigration(await generateSQLiteDrizzleJson({}), await generateSQLiteDrizzleJson(definitions, undefined, CASING))) database.exec(statement);
    const orm = drizzleSqlite({ client: database, schema: definitions, casing: CASING });
    const ids = await seed(orm, definitions);
    return {
      name: "sqlite",
      definitions,
      unmappable: { notes: ["attachment"] },
      connection: { sqlite: database },
      ...ids,
      notes: async () => (await orm.query.notes.findMany({ with: { author: true }, orderBy: (n) => asc(n.id) })).map(plainNote),
      close: () => {
        database.close();
        return Promise.resolve();
      },
    };
  },
};

const postgresEngine: DrizzleEngine = {
  name: "postgres",
  skipReason: postgresSkipReason,
  open: async () => {
    const schema = await createTestSchema(databaseUrl ?? "");
    const definitions = postgresDefinitions(schema.name);
    // The schema itself exists already: drizzle-kit is told so, and writes only what is in it.
    const statements = await generateMigration(generateDrizzleJson({ ns: definitions.ns }), generateDrizzleJson(definitions, undefined, undefined, CASING));
    for (const statement of statements) await schema.pool.query(statement);
    const orm = drizzlePostgres({ client: schema.pool, schema: definitions, casing: CASING });
    const ids = await seed(orm, definitions);
    return {
      name: "postgres",
      definitions,
      unmappable: { users: ["joinedAt"], notes: ["meta"] },
      connection: { postgres: schema.pool },
      ...ids,
      notes: async () => (await orm.query.notes.findMany({ with: { author: true }, orderBy: (n) => asc(n.id) })).map(plainNote),
      close: () => schema.drop(),
    };
  },
};

/** Both engines; Postgres reports a skip reason when DATABASE_URL is unset. */
export const DRIZZLE_ENGINES: readonly DrizzleEngine[] = [sqliteEngine, postgresEngine];
