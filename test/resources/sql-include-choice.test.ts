import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CapabilityDenied, createManualClock, createMint, narrow, type Capability, type DbRule } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { ReadQuery } from "../../src/resources/sql/query.ts";
import { NOTES_ENGINES, NOTES_RELATED_SCHEMA, type NotesHarness } from "./sql-notes-fixture.ts";

/*
 * A link that grants a model by several rules, only some of which let a read
 * include a relation: the rule a read is confined by is chosen with its
 * includes, so a read that one rule allows is not refused because another
 * rule was weighed first, and what the read may do is always what one rule
 * grants (its scope, row rule, fields and includes), never the sum of two.
 * On both engines.
 */

const N = "Note";
const P = "Project";
const TENANT = { principal: "tenant" } as const;
const PROJECTS: readonly DbRule[] = [{ model: P, ops: ["read"], scope: { tenant: TENANT } }];
/** Rule A: every field of a note, no include. Rule B: published notes only, a few fields, includes project's id and name, one level. */
const A: DbRule = { model: N, ops: ["read"], scope: { tenant: TENANT }, fields: ["id", "title", "status", "projectId"] };
const B: DbRule = { model: N, ops: ["read"], scope: { tenant: TENANT }, fields: ["id", "status", "projectId"], rows: { field: "status", op: "eq", value: "published" }, include: { project: { fields: ["id", "name"] } } };
/** Rule C: draft notes only (the field relating them to their project too), includes project nested two levels deep. */
const C: DbRule = { model: N, ops: ["read"], scope: { tenant: TENANT }, fields: ["id", "projectId"], rows: { field: "status", op: "eq", value: "draft" }, include: { project: {} }, maxIncludeDepth: 2 };
const PROJECT_NOTES: readonly DbRule[] = [{ model: P, ops: ["read"], scope: { tenant: TENANT }, include: { notes: {} } }];

const alice = (db: readonly DbRule[]) => createMint({ issuer: "include-choice", clock: createManualClock(0), policy: () => ({ db }) }).issue({ id: "alice", tenants: ["t1"] });
const read = (db: SqlDatabase, cap: Capability, q: ReadQuery) => db.read(cap as DbCapability<"read">, q);
const ids = (rows: readonly Record<string, unknown>[]) => rows.map((r) => r.id);

/** Bypass attempts: each read, under a link holding several rules, that no single rule allows; each is refused before any SQL. */
const REFUSED: readonly { name: string; grant: readonly DbRule[]; narrowTo?: readonly DbRule[]; query: ReadQuery; message: RegExp }[] = [
  {
    name: "a field only rule A grants, with an include only rule B allows",
    grant: [A, B, ...PROJECTS],
    query: { model: N, fields: ["id", "title"], include: { project: { fields: ["id"] } } },
    message: /does not let a read of Note include project/,
  },
  {
    name: "an include field rule B does not list (A includes nothing)",
    grant: [A, B, ...PROJECTS],
    query: { model: N, fields: ["id"], include: { project: { fields: ["id", "budget"] } } },
    message: /link 0 lets a read of Note include project naming only the fields id, name of Project, and this include names budget/,
  },
  {
    name: "an include nested deeper than rule B allows, without a rule that nests that deep",
    grant: [A, B, ...PROJECT_NOTES],
    query: { model: N, fields: ["id"], include: { project: { fields: ["id"], include: { notes: { fields: ["id"] } } } } },
    message: /lets includes nest at most 1 level below a read of Note/,
  },
  {
    name: "nesting deeper than rule B allows, with rule C's depth but a field C does not grant",
    grant: [A, B, C, ...PROJECT_NOTES],
    query: { model: N, fields: ["id", "status"], include: { project: { fields: ["id"], include: { notes: { fields: ["id"] } } } } },
    message: /link 0 lets includes nest at most 1 level below a read of Note, and this include of project nests 2/,
  },
  {
    name: "an include of B's from a narrowing that keeps only rule A",
    grant: [A, B, ...PROJECTS],
    narrowTo: [A, ...PROJECTS],
    query: { model: N, fields: ["id"], include: { project: { fields: ["id"] } } },
    message: /link 1 does not let a read of Note include project/,
  },
  {
    name: "rule B's include with a filter on a field only rule A grants",
    grant: [A, B, ...PROJECTS],
    query: { model: N, fields: ["id"], where: { title: "bob's post" }, include: { project: { fields: ["id"] } } },
    message: /does not let a read of Note include project/,
  },
  {
    name: "rule B's include ordered by a field only rule A grants",
    grant: [A, B, ...PROJECTS],
    query: { model: N, fields: ["id"], orderBy: [{ field: "title" }], include: { project: { fields: ["id"] } } },
    message: /does not let a read of Note include project/,
  },
];

describe.each(NOTES_ENGINES)("rule choice with includes on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "a read is confined by one rule that allows its includes", () => {
    let h: NotesHarness;
    let db: SqlDatabase;
    beforeAll(async () => {
      h = await engine.open();
      db = createSqlDatabase({ schema: NOTES_RELATED_SCHEMA, ...h.connection });
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(async () => {
      await h.reset();
    });

    it("a read with an include is confined by the rule that allows the include, whichever rule comes first", async () => {
      for (const order of [
        [A, B],
        [B, A],
      ]) {
        const cap = alice([...order, ...PROJECTS]);
        // Rule B allows the include: only published notes, with their project's id and name.
        const included = await read(db, cap, { model: N, fields: ["id"], orderBy: [{ field: "id" }], include: { project: { fields: ["id", "name"] } } });
        expect(included).toEqual([
          { id: 3, project: { id: 2, name: "Borealis" } },
          { id: 4, project: { id: 2, name: "Borealis" } },
        ]);
        // Without an include, rule A (no row rule) confines the read: every t1 note.
        expect(ids(await read(db, cap, { model: N, fields: ["id"], orderBy: [{ field: "id" }] }))).toEqual([1, 2, 3, 4]);
      }
    });

    it("the depth an include nests chooses the rule that lets it nest that deep, and that rule's rows", async () => {
      const cap = alice([A, B, C, ...PROJECT_NOTES]);
      const nested = await read(db, cap, { model: N, fields: ["id"], orderBy: [{ field: "id" }], include: { project: { fields: ["id"], include: { notes: { fields: ["id"], orderBy: [{ field: "id" }] } } } } });
      // Rule C (drafts) is the only one nesting two levels; the notes nested under a project are read as Note reads, here by rule A.
      expect(nested).toEqual([
        { id: 1, project: { id: 1, notes: [{ id: 1 }, { id: 2 }] } },
        { id: 2, project: { id: 1, notes: [{ id: 1 }, { id: 2 }] } },
      ]);
      expect(ids(await read(db, cap, { model: N, fields: ["id"], orderBy: [{ field: "id" }], include: { project: { fields: ["name"] } } }))).toEqual([3, 4]);
    });

    it.each(REFUSED)("refuses $name, before any SQL", async ({ grant, narrowTo, query, message }) => {
      const root = alice(grant);
      const cap = narrowTo === undefined ? root : narrow(root, { db: narrowTo });
      h.clearCounts();
      const refused = await read(db, cap, query).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(CapabilityDenied);
      expect((refused as Error).message).toMatch(message);
      expect(h.executed()).toBe(0);
    });
  });
});
