import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createManualClock, createMint, GrantSchemaMismatch, UnmappableSchema, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import { schemaFromDrizzle } from "../../src/resources/sql/drizzle-import.ts";
import { checkGrants, schemaCheckedPolicy } from "../../src/resources/sql/grant-check.ts";
import { introspectSchema } from "../../src/resources/sql/introspect.ts";
import type { SchemaSpec } from "../../src/resources/sql/schema.ts";
import { CASING, DRIZZLE_ENGINES, type DrizzleWorld } from "./drizzle-fixture.ts";

/*
 * The adapter against a real Drizzle schema on a real database, on both
 * engines: the application's tables made by drizzle-kit and filled by
 * drizzle-orm, their definitions imported, grants checked against them when
 * minted, and scoped reads, writes and includes served by agentcap on the
 * rows Drizzle inserted, which the application then reads back through
 * Drizzle. The imported schema agrees with introspection of the same
 * database, except where Drizzle knows more than the database says.
 */

const TENANT = { principal: "tenant" } as const;
const GRANT: Grant = {
  db: [
    {
      model: "notes",
      ops: ["read", "create", "update"],
      fields: ["id", "tenantId", "authorId", "title", "body", "status", "score"],
      scope: { tenantId: TENANT },
      include: { author: { fields: ["id", "email", "admin"] } },
    },
    { model: "users", ops: ["read"], fields: ["id", "tenantId", "email", "admin"], scope: { tenantId: TENANT } },
  ],
};

interface ColumnView {
  readonly type: string;
  readonly nullable: boolean;
  readonly generated: boolean;
}

/**
 * Models keyed by table and column, as introspection keys them, so an
 * imported schema and an introspected one can be compared; `adjust` may
 * change or drop (null) a column's view.
 */
function byColumn(schema: SchemaSpec, adjust: (at: string, view: ColumnView) => ColumnView | null = (_, view) => view) {
  return Object.fromEntries(
    Object.values(schema).map((m) => [
      m.table,
      {
        primaryKey: m.fields[m.primaryKey]?.column ?? m.primaryKey,
        fields: Object.fromEntries(
          Object.entries(m.fields).flatMap(([name, f]) => {
            const column = f.column ?? name;
            const view = adjust(`${m.table}.${column}`, { type: f.type, nullable: f.nullable ?? false, generated: f.generated ?? false });
            return view === null ? [] : [[column, view]];
          }),
        ),
        relations: Object.fromEntries(
          Object.entries(m.relations ?? {}).map(([name, r]) => {
            const target = schema[r.model];
            return [name, { table: target?.table, from: m.fields[r.from]?.column ?? r.from, to: target?.fields[r.to]?.column ?? r.to, many: r.many ?? false }];
          }),
        ),
      },
    ]),
  );
}

/** Where the database alone says less than the Drizzle definitions, as introspection reads it. */
const DATABASE_VIEW: Readonly<Record<"sqlite" | "postgres", Readonly<Record<string, ColumnView | null>>>> = {
  sqlite: {
    // A Drizzle boolean is an integer column to SQLite.
    "users.admin": { type: "integer", nullable: false, generated: false },
    // An autoincrement key is one the database would also take from a query.
    "users.id": { type: "integer", nullable: false, generated: false },
    "notes.id": { type: "integer", nullable: false, generated: false },
  },
  postgres: {
    // Introspection reads no uuid or enum column: to the database they are types of their own.
    "notes.public_id": null,
    "notes.status": null,
  },
};

describe.each(DRIZZLE_ENGINES)("a Drizzle schema on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "made by drizzle-kit, filled by drizzle-orm, served by agentcap", () => {
    let world: DrizzleWorld;
    let schema: SchemaSpec;
    beforeAll(async () => {
      world = await engine.open();
      schema = (await schemaFromDrizzle(world.definitions, { casing: CASING, leaveOut: world.unmappable })).schema;
    });
    afterAll(async () => {
      await world.close();
    });

    it("refuses what it cannot map, naming every table and column, and imports the rest once they are left out", async () => {
      const refused = await schemaFromDrizzle(world.definitions, { casing: CASING }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(UnmappableSchema);
      const problems = (refused as UnmappableSchema).problems;
      expect((refused as UnmappableSchema).code).toBe("ERR_UNMAPPABLE_SCHEMA");
      expect(problems.map((p) => /^table (\w+), column (\w+)/.exec(p)?.slice(1).join("."))).toEqual(
        engine.name === "sqlite" ? ["notes.attachment"] : ["users.joined_at", "notes.meta"],
      );
      expect(problems.join("\n")).toMatch(engine.name === "sqlite" ? /its type blob \(SQLiteBlobBuffer\)/ : /its type timestamp \(PgTimestamp\)[^\n]*\n[^\n]*its type jsonb \(PgJsonb\)/);

      const { schema: imported, skipped } = await schemaFromDrizzle(world.definitions, { casing: CASING, leaveOut: world.unmappable });
      const sqlite = engine.name === "sqlite";
      expect(imported).toEqual({
        tenants: {
          table: "tenants",
          primaryKey: "id",
          fields: { id: { type: "text" }, name: { type: "text" } },
          relations: { users: { model: "users", from: "id", to: "tenantId", many: true }, notes: { model: "notes", from: "id", to: "tenantId", many: true } },
        },
        users: {
          table: "users",
          primaryKey: "id",
          fields: {
            id: { type: "integer", generated: true },
            tenantId: { type: "text", column: "tenant_id" },
            email: { type: "text" },
            admin: { type: "boolean" },
            // SQLite keeps a timestamp as the integer seconds since the epoch; Postgres's timestamp is left out.
            ...(sqlite ? { joinedAt: { type: "integer", column: "joined_at" } } : {}),
          },
          relations: { tenant: { model: "tenants", from: "tenantId", to: "id" }, notes: { model: "notes", from: "id", to: "authorId", many: true } },
        },
        notes: {
          table: "notes",
          primaryKey: "id",
          fields: {
            id: { type: "integer", generated: true },
            ...(sqlite ? {} : { publicId: { type: "text", column: "public_id" } }),
            tenantId: { type: "text", column: "tenant_id" },
            authorId: { type: "integer", column: "author_id" },
            title: { type: "text" },
            body: { type: "text", nullable: true },
            status: { type: "text" },
            score: { type: "real", nullable: true },
            // SQLite keeps JSON as its text; Postgres's jsonb is left out.
            ...(sqlite ? { meta: { type: "text", nullable: true } } : {}),
          },
          relations: { tenant: { model: "tenants", from: "tenantId", to: "id" }, author: { model: "users", from: "authorId", to: "id" } },
        },
      });
      const left = (table: string, column: string) => ({ table, column, reason: "left out by the application (leaveOut)" });
      expect(skipped).toEqual(sqlite ? [left("notes", "attachment")] : [left("users", "joined_at"), left("notes", "meta")]);
    });

    it("checks grants against the imported models when they are made and minted: one error lists every problem", () => {
      const unmapped = engine.name === "sqlite" ? "attachment" : "meta";
      const bad: Grant = {
        db: [
          { model: "posts", ops: ["read"] },
          { model: "notes", ops: ["read"], fields: ["id", "secret", unmapped], scope: { orgId: "acme" }, include: { editor: {} } },
        ],
      };
      const expected = [
        "grants.0.db.0: model posts is not in the schema",
        "grants.0.db.1.fields: notes has no field secret",
        `grants.0.db.1.fields: notes has no field ${unmapped}`,
        "grants.0.db.1.scope: notes has no field orgId, so the scope cannot be enforced",
        "grants.0.db.1.include: notes has no relation editor",
      ];
      const problems = (attempt: () => unknown) => {
        try {
          attempt();
        } catch (e) {
          expect(e).toBeInstanceOf(GrantSchemaMismatch);
          return (e as GrantSchemaMismatch).problems;
        }
        return [];
      };
      expect(problems(() => { checkGrants(schema, [bad]); })).toEqual(expected);
      expect(problems(() => createSqlDatabase({ schema, ...world.connection, grants: [bad] }))).toEqual(expected);
      const mint = createMint({ issuer: "drizzle", clock: createManualClock(0), policy: schemaCheckedPolicy(schema, () => bad) });
      expect(problems(() => mint.issue({ id: "ada", tenants: ["acme"] }))).toEqual(expected);
      expect(() => { checkGrants(schema, [GRANT]); }).not.toThrow();
    });

    describe("scoped reads, writes and includes on the rows Drizzle inserted", () => {
      let db: SqlDatabase;
      const mint = createMint({ issuer: "drizzle", clock: createManualClock(0), policy: () => GRANT });
      const ada = () => mint.issue({ id: "ada", tenants: ["acme"] });
      beforeAll(() => {
        db = createSqlDatabase({ schema, ...world.connection, grants: [GRANT] });
      });

      it("reads the tenant's notes, each with its author where the author is the tenant's too", async () => {
        const [plan, idea, misfiled] = [world.noteIds.Plan, world.noteIds.Idea, world.noteIds.Misfiled];
        const rows = await db.read(ada(), { model: "notes", fields: ["id", "title", "status", "score"], orderBy: [{ field: "id" }], include: { author: { fields: ["email", "admin"] } } });
        expect(rows).toEqual([
          { id: plan, title: "Plan", status: "published", score: 4.5, author: { email: "ada@acme.test", admin: true } },
          { id: idea, title: "Idea", status: "draft", score: null, author: { email: "bob@acme.test", admin: false } },
          // Its author is globex's: out of the users grant's scope, so nothing is included.
          { id: misfiled, title: "Misfiled", status: "draft", score: null, author: null },
        ]);
        expect(await db.read(ada() as DbCapability<"read">, { model: "notes", fields: ["title"], where: { status: "published" } })).toEqual([{ title: "Plan" }]);
        expect(await db.read(ada() as DbCapability<"read">, { model: "users", fields: ["email", "admin"], where: { admin: true } })).toEqual([{ email: "ada@acme.test", admin: true }]);
        expect(await db.read(ada() as DbCapability<"read">, { model: "notes", fields: ["id"], where: { id: world.noteIds.Secret } })).toEqual([]);
      });

      it("writes in the tenant's scope, and the application reads the writes back through Drizzle", async () => {
        const author = world.userIds["ada@acme.test"];
        const made = await db.create(ada(), { model: "notes", values: { authorId: author, title: "From the agent", status: "published", score: 2.5 }, returning: ["id", "tenantId"] });
        expect(made.rows).toEqual([{ id: expect.any(Number) as number, tenantId: "acme" }]);
        const id = made.rows[0]?.id;
        // Another tenant's note is out of scope: nothing changes.
        expect((await db.update(ada() as DbCapability<"update">, { model: "notes", set: { title: "Taken" }, where: { id: world.noteIds.Secret } })).count).toBe(0);
        expect((await db.update(ada() as DbCapability<"update">, { model: "notes", set: { status: "published", score: 1 }, where: { id: world.noteIds.Idea } })).count).toBe(1);

        const notes = await world.notes();
        expect(notes.find((n) => n.id === id)).toMatchObject({ tenantId: "acme", title: "From the agent", status: "published", score: 2.5, meta: null, author: { email: "ada@acme.test", admin: true } });
        expect(notes.find((n) => n.id === world.noteIds.Idea)).toMatchObject({ status: "published", score: 1 });
        expect(notes.find((n) => n.id === world.noteIds.Secret)).toMatchObject({ tenantId: "globex", title: "Secret" });
      });

      it("reads each mapped column as the value the database holds and Drizzle means", async () => {
        const notes = await world.notes();
        const plan = notes.find((n) => n.title === "Plan");
        if (engine.name === "sqlite") {
          // A SQLite timestamp is the integer of seconds Drizzle stores; its JSON is the text it stores.
          const grant: Grant = { db: [{ model: "users", ops: ["read"], scope: { tenantId: "acme" } }, { model: "notes", ops: ["read"], scope: { tenantId: "acme" } }] };
          const cap = createMint({ issuer: "drizzle", clock: createManualClock(0), policy: () => grant }).issue({ id: "app" });
          const [user] = await db.read(cap, { model: "users", fields: ["joinedAt"], where: { email: "ada@acme.test" } });
          expect(user?.joinedAt).toBe((plan?.author?.joinedAt.getTime() ?? 0) / 1000);
          const [note] = await db.read(cap, { model: "notes", fields: ["meta"], where: { title: "Plan" } });
          expect(JSON.parse(note?.meta as string)).toEqual(plan?.meta);
        } else {
          // A uuid and an enum value are their text; Postgres refuses text that is neither.
          const grant: Grant = { db: [{ model: "notes", ops: ["read", "create"], scope: { tenantId: "acme" } }] };
          const cap = createMint({ issuer: "drizzle", clock: createManualClock(0), policy: () => grant }).issue({ id: "app" });
          const [note] = await db.read(cap, { model: "notes", fields: ["publicId", "status"], where: { title: "Plan" } });
          expect(note?.publicId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
          expect(await db.read(cap as DbCapability<"read">, { model: "notes", fields: ["title"], where: { publicId: note?.publicId as string } })).toEqual([{ title: "Plan" }]);
          // Their text is what startsWith and contains look at, as for any text field.
          const prefix = (note?.publicId as string).slice(0, 8);
          expect(await db.read(cap as DbCapability<"read">, { model: "notes", fields: ["title"], where: { publicId: { startsWith: prefix }, title: "Plan" } })).toEqual([{ title: "Plan" }]);
          expect(await db.read(cap as DbCapability<"read">, { model: "notes", fields: ["title"], where: { publicId: { contains: prefix.slice(2) }, title: "Plan" } })).toEqual([{ title: "Plan" }]);
          const statuses = await db.read(cap, { model: "notes", fields: ["status"], where: { status: { startsWith: "publ" } } });
          expect(statuses.length).toBeGreaterThan(0);
          expect(statuses.every((n) => n.status === "published")).toBe(true);
          expect(await db.read(cap as DbCapability<"read">, { model: "notes", fields: ["status"], where: { status: { contains: "zzz" } } })).toEqual([]);
          const author = world.userIds["ada@acme.test"];
          await expect(db.create(cap as DbCapability<"create">, { model: "notes", values: { authorId: author, title: "Bad", status: "archived" } })).rejects.toThrow();
          expect((await world.notes()).some((n) => n.title === "Bad")).toBe(false);
        }
      });
    });

    it("agrees with introspection of the same database, except where Drizzle says more than the database does", async () => {
      const live = await introspectSchema(world.connection);
      const adjusted = DATABASE_VIEW[engine.name];
      const imported = byColumn(schema, (at, view) => (Object.hasOwn(adjusted, at) ? (adjusted[at] ?? null) : view));
      if (engine.name === "postgres") expect(live.skipped).toEqual(expect.arrayContaining([expect.objectContaining({ table: "notes", column: "public_id" }), expect.objectContaining({ table: "notes", column: "status" })]));
      expect(byColumn(live.schema)).toEqual(imported);
    });
  });
});
