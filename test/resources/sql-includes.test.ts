import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { BudgetExhausted, CapabilityDenied, createManualClock, createMint, GrantSchemaMismatch, InvalidInput, LimitExceeded, narrow, type Capability, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type Row, type SqlConnection, type SqlDatabase } from "../../src/resources/sql/database.ts";
import { checkGrants } from "../../src/resources/sql/grant-check.ts";
import type { ReadQuery } from "../../src/resources/sql/query.ts";
import { NOTES_ENGINES, NOTES_RELATED_SCHEMA, type NotesHarness } from "./sql-notes-fixture.ts";

/*
 * Relations: a read includes the rows of related models, each relation
 * allowed by every link's grant of the parent model, nested no deeper than
 * the grants and the resource allow, and the included rows confined as a
 * read of their own model would be (scope, row rules, field actions, row
 * limits). On both engines.
 */

const N = "Note";
const P = "Project";
const TENANT = { principal: "tenant" } as const;
const USER = { principal: "user" } as const;
const POLICY: Grant = {
  db: [
    {
      model: N,
      ops: ["read"],
      scope: { tenant: TENANT },
      rows: { any: [{ field: "status", op: "ne", value: "draft" }, { field: "owner", op: "eq", value: USER }] },
      fieldActions: { ssn: { mask: "***-**-{last4}" }, createdBy: "deny" },
      include: { project: { fields: ["id", "tenant", "name", "budget"] } },
      maxIncludeDepth: 2,
    },
    { model: P, ops: ["read"], scope: { tenant: TENANT }, fieldActions: { name: "hash", budget: "redact", secret: "deny" }, include: { notes: {} } },
  ],
};

const mintFor = (policy: Grant = POLICY) => createMint({ issuer: "includes", clock: createManualClock(0), policy: () => policy });
const read = (db: SqlDatabase, cap: Capability, q: ReadQuery) => db.read(cap as DbCapability<"read">, q);

/** Runs SQL of the test's own on either engine. */
async function run(connection: SqlConnection, text: string): Promise<void> {
  if ("sqlite" in connection) connection.sqlite.exec(text);
  else await connection.postgres.query(text);
}

describe("include grants checked against the schema", () => {
  it("lists every relation the model lacks and every include field its model lacks", () => {
    const grant: Grant = { db: [{ model: N, ops: ["read"], include: { author: {}, project: { fields: ["id", "nmae"] } } }] };
    const error = (() => {
      try {
        checkGrants(NOTES_RELATED_SCHEMA, [grant]);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(GrantSchemaMismatch);
    expect((error as GrantSchemaMismatch).problems).toEqual(["grants.0.db.0.include: Note has no relation author", "grants.0.db.0.include.project.fields: Project has no field nmae"]);
  });

  it("refuses a malformed include or depth in a grant", () => {
    const alice = mintFor().issue({ id: "alice", tenants: ["t1"] });
    expect(() => narrow(alice, { db: [{ model: N, ops: ["read"], maxIncludeDepth: 9 }] })).toThrow(/maxIncludeDepth/);
    expect(() => narrow(alice, { db: [{ model: N, ops: ["read"], include: { project: { fields: ["id"], limit: 1 } } }] } as unknown as Grant)).toThrow(InvalidInput);
  });
});

describe.each(NOTES_ENGINES)("includes on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "related rows, each confined by its own model's grant", () => {
    let h: NotesHarness;
    let db: SqlDatabase;
    beforeAll(async () => {
      h = await engine.open();
      db = createSqlDatabase({ schema: NOTES_RELATED_SCHEMA, ...h.connection, hashKey: new Uint8Array(16) });
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(async () => {
      await h.reset();
      // A note of t1 whose foreign key reaches t2's project: the relation must not carry the read across tenants.
      await run(h.connection, "INSERT INTO notes VALUES (6, 't1', 'alice', 3, 'published', 'alice on Cygnus', NULL, 'alice')");
    });

    it("includes to-one and to-many relations, shown as each included model's grant shows them", async () => {
      const alice = mintFor().issue({ id: "alice", tenants: ["t1"] });
      const notes = await read(db, alice, { model: N, fields: ["id", "ssn"], orderBy: [{ field: "id" }], include: { project: { fields: ["id", "tenant", "budget"] } } });
      expect(notes).toEqual([
        { id: 1, ssn: "***-**-6789", project: { id: 1, tenant: "t1", budget: "[redacted]" } },
        { id: 3, ssn: null, project: { id: 2, tenant: "t1", budget: "[redacted]" } },
        { id: 4, ssn: "***-**-3333", project: { id: 2, tenant: "t1", budget: "[redacted]" } },
        // Project 3 is t2's: out of Project's scope, so nothing is included.
        { id: 6, ssn: null, project: null },
      ]);
      const projects = await read(db, alice, { model: P, fields: ["id"], orderBy: [{ field: "id" }], include: { notes: { fields: ["id", "owner"], orderBy: [{ field: "id", direction: "desc" }] } } });
      // Bob's draft (note 2) is outside Note's row rule; the foreign key field was read only to relate the rows.
      expect(projects).toEqual([
        { id: 1, notes: [{ id: 1, owner: "alice" }] },
        { id: 2, notes: [{ id: 4, owner: "alice" }, { id: 3, owner: "bob" }] },
      ]);
    });

    it("without fields, an include returns what every link lets its relation show; a narrowing can only shrink that", async () => {
      const alice = mintFor().issue({ id: "alice", tenants: ["t1"] });
      const [first] = await read(db, alice, { model: N, fields: ["id"], where: { id: 1 }, include: { project: {} } });
      const project = first?.project as Row;
      expect(Object.keys(project)).toEqual(["id", "tenant", "name", "budget"]);
      expect(project.name).toMatch(/^[0-9a-f]{16,}$/);
      const narrowed = narrow(alice, { db: [{ model: N, ops: ["read"], include: { project: { fields: ["id", "secret"] } } }, { model: P, ops: ["read"] }] });
      expect(await read(db, narrowed, { model: N, fields: ["id"], where: { id: 1 }, include: { project: {} } })).toEqual([{ id: 1, project: { id: 1 } }]);
    });

    it("nests includes as deep as the grants allow, each level confined", async () => {
      const alice = mintFor().issue({ id: "alice", tenants: ["t1"] });
      const rows = await read(db, alice, { model: N, fields: ["id"], where: { id: 3 }, include: { project: { fields: ["id"], include: { notes: { fields: ["id"], orderBy: [{ field: "id" }] } } } } });
      expect(rows).toEqual([{ id: 3, project: { id: 2, notes: [{ id: 3 }, { id: 4 }] } }]);
    });

    it("applies the included model's row limits: its maxRows per call and its maxRowsRead in total", async () => {
      const alice = mintFor().issue({ id: "alice", tenants: ["t1"] });
      const one = narrow(alice, { db: [{ model: P, ops: ["read"], include: { notes: {} } }, { model: N, ops: ["read"], maxRows: 1 }] });
      const many = await read(db, one, { model: P, fields: ["id"], include: { notes: { fields: ["id"] } } }).catch((e: unknown) => e);
      expect(many).toBeInstanceOf(LimitExceeded);
      expect((many as Error).message).toMatch(/more than 1 Note rows are included through notes/);
      const budget = narrow(alice, { db: [{ model: P, ops: ["read"], include: { notes: {} } }, { model: N, ops: ["read"], maxRowsRead: 3 }] });
      expect(await read(db, budget, { model: P, fields: ["id"], where: { id: 2 }, include: { notes: { fields: ["id"] } } })).toHaveLength(1);
      const spent = await read(db, budget, { model: P, fields: ["id"], where: { id: 2 }, include: { notes: { fields: ["id"] } } }).catch((e: unknown) => e);
      expect(spent).toBeInstanceOf(BudgetExhausted);
      expect((spent as Error).message).toMatch(/read 3 Note rows in total \(maxRowsRead\); 1 are left and this read found 2/);
    });

    it("refuses, before any SQL, an include the grants or the schema do not allow, saying what the capability allows", async () => {
      const alice = mintFor().issue({ id: "alice", tenants: ["t1"] });
      h.clearCounts();
      const refused = await read(db, narrow(alice, { db: [{ model: N, ops: ["read"] }] }), { model: N, fields: ["id"], include: { project: {} } }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(CapabilityDenied);
      expect((refused as Error).message).toMatch(/link 1 does not let a read of Note include project; the capability lets it include no relation/);
      const unknown = await read(db, alice, { model: N, fields: ["id"], include: { author: {} } }).catch((e: unknown) => e);
      expect(unknown).toBeInstanceOf(InvalidInput);
      expect((unknown as Error).message).toMatch(/include: Note has no relation "author"/);
      const bad = await read(db, alice, { model: N, fields: ["id"], include: { project: { limit: 1 } } } as unknown as ReadQuery).catch((e: unknown) => e);
      expect((bad as Error).message).toMatch(/^include\.project: query\.limit is not part of a query/);
      expect(h.executed()).toBe(0);
      expect(() => db.readSync(alice as DbCapability<"read">, { model: N, include: { project: {} } })).toThrow(InvalidInput);
    });

    it("exports included rows: as JSON in a CSV cell, and nested in JSON lines", async () => {
      const alice = mintFor().issue({ id: "alice", tenants: ["t1"] });
      const q: ReadQuery = { model: N, fields: ["id"], where: { id: 1 }, include: { project: { fields: ["id"] } } };
      expect(await db.export(alice as DbCapability<"read">, q, "csv")).toBe('id,project\r\n1,"{""id"":1}"\r\n');
      expect(await db.export(alice as DbCapability<"read">, q, "jsonl")).toBe('{"id":1,"project":{"id":1}}\n');
    });

    it("property: included rows are never outside the included model's scope and row rules, whatever the grants, data and query", async () => {
      const tenants = ["t1", "t2"] as const;
      const note = fc.record({
        tenant: fc.constantFrom(...tenants),
        owner: fc.constantFrom("alice", "bob", "carol"),
        projectId: fc.integer({ min: 1, max: 4 }),
        status: fc.constantFrom("draft", "published"),
      });
      await fc.assert(
        fc.asyncProperty(
          fc.array(note, { maxLength: 12 }),
          fc.constantFrom(...tenants),
          fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
          fc.option(fc.constantFrom("draft", "published"), { nil: undefined }),
          fc.boolean(),
          async (notes, tenant, onlyProject, status, nested) => {
            await run(h.connection, "DELETE FROM notes");
            for (const [i, n] of notes.entries()) {
              await run(h.connection, `INSERT INTO notes VALUES (${i + 1}, '${n.tenant}', '${n.owner}', ${n.projectId}, '${n.status}', 't', NULL, NULL)`);
            }
            const root = mintFor().issue({ id: "alice", tenants: [tenant] });
            const cap = onlyProject === undefined ? root : narrow(root, { db: [{ model: N, ops: ["read"], include: { project: {} }, maxIncludeDepth: 2 }, { model: P, ops: ["read"], scope: { id: onlyProject }, include: { notes: {} } }] });
            const include = { project: { fields: ["id", "tenant"], ...(nested ? { include: { notes: { fields: ["id", "tenant", "owner", "status"], ...(status === undefined ? {} : { where: { status } }) } } } : {}) } };
            const rows = await read(db, cap, { model: N, fields: ["id", "tenant", "owner", "status"], include });
            const visible = (r: Row) => r.tenant === tenant && (r.status !== "draft" || r.owner === "alice");
            for (const row of rows) {
              expect(visible(row)).toBe(true);
              const project = row.project as Row | null;
              if (project === null) continue;
              expect(project.tenant).toBe(tenant);
              if (onlyProject !== undefined) expect(project.id).toBe(onlyProject);
              for (const n of (project.notes ?? []) as Row[]) {
                expect(visible(n)).toBe(true);
                if (status !== undefined) expect(n.status).toBe(status);
              }
            }
          },
        ),
        { numRuns: engine.name === "sqlite" ? 60 : 15 },
      );
    });
  });
});
