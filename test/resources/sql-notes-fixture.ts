import Database from "better-sqlite3";
import { vi } from "vitest";
import type { ModelSpec, SchemaSpec } from "../../src/resources/sql/schema.ts";
import type { SqlConnection } from "../../src/resources/sql/database.ts";
import { createTestSchema, databaseUrl, postgresSkipReason } from "../support/postgres.ts";

/*
 * A second test world for the database, on both engines: notes owned by
 * users of tenants, in projects, for the principal-bound scope, write
 * policies and relations. Tenants and owners are text, as principals'
 * tenants and ids are.
 */

export const NOTES_SCHEMA: SchemaSpec = {
  Project: {
    table: "projects",
    primaryKey: "id",
    fields: {
      id: { type: "integer" },
      tenant: { type: "text" },
      name: { type: "text" },
      budget: { type: "real" },
      secret: { type: "text", nullable: true },
    },
  },
  Note: {
    table: "notes",
    primaryKey: "id",
    fields: {
      id: { type: "integer" },
      tenant: { type: "text" },
      owner: { type: "text" },
      projectId: { type: "integer", column: "project_id" },
      status: { type: "text" },
      title: { type: "text" },
      ssn: { type: "text", nullable: true },
      createdBy: { type: "text", column: "created_by", nullable: true },
    },
  },
};

/** NOTES_SCHEMA with its relations: a note's project, and a project's notes. */
export const NOTES_RELATED_SCHEMA: SchemaSpec = {
  Project: { ...(NOTES_SCHEMA.Project as ModelSpec), relations: { notes: { model: "Note", from: "id", to: "projectId", many: true } } },
  Note: { ...(NOTES_SCHEMA.Note as ModelSpec), relations: { project: { model: "Project", from: "projectId", to: "id" } } },
};

const DDL = [
  "CREATE TABLE projects (id integer PRIMARY KEY, tenant text NOT NULL, name text NOT NULL, budget double precision NOT NULL, secret text)",
  "CREATE TABLE notes (id integer PRIMARY KEY, tenant text NOT NULL, owner text NOT NULL, project_id integer NOT NULL, status text NOT NULL, title text NOT NULL, ssn text, created_by text)",
];

/** t1 has projects 1 and 2, t2 project 3. Alice and Bob are of t1, Carol of t2. */
export const PROJECTS = [
  [1, "t1", "Apollo", 100, "codename A"],
  [2, "t1", "Borealis", 200, null],
  [3, "t2", "Cygnus", 300, "codename C"],
] as const;
export const NOTES = [
  [1, "t1", "alice", 1, "draft", "alice's draft", "123-45-6789", null],
  [2, "t1", "bob", 1, "draft", "bob's draft", "987-65-4321", null],
  [3, "t1", "bob", 2, "published", "bob's post", null, null],
  [4, "t1", "alice", 2, "published", "alice's post", "111-22-3333", null],
  [5, "t2", "carol", 3, "published", "carol's post", "555-66-7777", null],
] as const;

export interface NotesHarness {
  readonly connection: SqlConnection;
  reset(): Promise<void>;
  /** Every row of a table, by id, as the driver returns it. */
  rows(table: "projects" | "notes"): Promise<Record<string, unknown>[]>;
  /** Statements run (SQLite) or connections checked out (Postgres) since the last clearCounts. */
  executed(): number;
  clearCounts(): void;
  close(): Promise<void>;
}

export interface NotesEngine {
  readonly name: "sqlite" | "postgres";
  readonly skipReason: string | null;
  open(): Promise<NotesHarness>;
}

const inserts = (placeholder: (i: number) => string) => ({
  project: `INSERT INTO projects VALUES (${[1, 2, 3, 4, 5].map(placeholder).join(", ")})`,
  note: `INSERT INTO notes VALUES (${[1, 2, 3, 4, 5, 6, 7, 8].map(placeholder).join(", ")})`,
});

const sqlite: NotesEngine = {
  name: "sqlite",
  skipReason: null,
  open: () => {
    let executed = 0;
    const db = new Database(":memory:", {
      verbose: () => {
        executed++;
      },
    });
    for (const statement of DDL) db.exec(statement);
    const sql = inserts(() => "?");
    return Promise.resolve({
      connection: { sqlite: db },
      reset: () => {
        db.exec("DELETE FROM projects; DELETE FROM notes;");
        for (const p of PROJECTS) db.prepare(sql.project).run(...p);
        for (const n of NOTES) db.prepare(sql.note).run(...n);
        return Promise.resolve();
      },
      rows: (table) => Promise.resolve(db.prepare(`SELECT * FROM ${table} ORDER BY id`).all() as Record<string, unknown>[]),
      executed: () => executed,
      clearCounts: () => {
        executed = 0;
      },
      close: () => Promise.resolve(void db.close()),
    });
  },
};

const postgres: NotesEngine = {
  name: "postgres",
  skipReason: postgresSkipReason,
  open: async () => {
    const schema = await createTestSchema(databaseUrl ?? "");
    const { pool } = schema;
    for (const statement of DDL) await pool.query(statement);
    const sql = inserts((i) => `$${i}`);
    const connect = vi.spyOn(pool, "connect");
    return {
      connection: { postgres: pool },
      reset: async () => {
        await pool.query("DELETE FROM projects");
        await pool.query("DELETE FROM notes");
        for (const p of PROJECTS) await pool.query(sql.project, [...p]);
        for (const n of NOTES) await pool.query(sql.note, [...n]);
      },
      rows: async (table) => (await pool.query<Record<string, unknown>>(`SELECT * FROM ${table} ORDER BY id`)).rows,
      executed: () => connect.mock.calls.length,
      clearCounts: () => connect.mockClear(),
      close: () => schema.drop(),
    };
  },
};

export const NOTES_ENGINES: readonly NotesEngine[] = [sqlite, postgres];
