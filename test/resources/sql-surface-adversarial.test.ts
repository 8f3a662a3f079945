import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CapabilityDenied, createManualClock, createMint, InvalidInput, narrow, type Capability, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { AggregateQuery, CreateQuery, DeleteQuery, ReadQuery, UpdateQuery } from "../../src/resources/sql/query.ts";
import { NOTES_ENGINES, NOTES_SCHEMA, type NotesHarness } from "./sql-notes-fixture.ts";

/*
 * Bypass attempts against the database's policy surface, on both engines:
 * probing a masked, hashed, redacted or denied field through filters,
 * order, aggregates and group by; unmasking by narrowing; leaving the
 * principal's rows through filters, writes, a second rule or a narrowing;
 * breaking the write policies. Each fails with its typed error before any
 * SQL runs, and no table changes.
 */

const N = "Note";
const P = "Project";
const USER = { principal: "user" } as const;
const POLICY: Grant = {
  db: [
    {
      model: N,
      ops: ["read", "create", "update", "delete"],
      scope: { tenant: { principal: "tenant" } },
      rows: { any: [{ field: "status", op: "ne", value: "draft" }, { field: "owner", op: "eq", value: USER }] },
      fieldActions: { ssn: { mask: "***-**-{last4}" }, createdBy: "deny" },
      immutable: ["projectId"],
      required: ["title"],
    },
    { model: P, ops: ["read"], scope: { tenant: { principal: "tenant" } }, fieldActions: { name: "hash", budget: "redact", secret: "deny" } },
  ],
};

function world() {
  const mint = createMint({ issuer: "surface", clock: createManualClock(0), policy: () => POLICY });
  const alice = mint.issue({ id: "alice", tenants: ["t1"] });
  return {
    mint,
    alice,
    own: narrow(alice, { db: [{ model: N, ops: ["read", "create", "update", "delete"], scope: { owner: USER } }] }),
    ordered: narrow(alice, { db: [{ model: N, ops: ["create"], rows: { field: "title", op: "gt", value: "m" } }] }),
  };
}
type World = ReturnType<typeof world>;

const api = (db: SqlDatabase) => ({
  read: (cap: Capability, q: unknown) => db.read(cap as DbCapability<"read">, q as ReadQuery),
  aggregate: (cap: Capability, q: unknown) => db.aggregate(cap as DbCapability<"read">, q as AggregateQuery),
  create: (cap: Capability, q: unknown) => db.create(cap as DbCapability<"create">, q as CreateQuery),
  update: (cap: Capability, q: unknown) => db.update(cap as DbCapability<"update">, q as UpdateQuery),
  delete: (cap: Capability, q: unknown) => db.delete(cap as DbCapability<"delete">, q as DeleteQuery),
});
type Api = ReturnType<typeof api>;

interface Attempt {
  readonly name: string;
  readonly run: (db: Api, w: World) => Promise<unknown>;
  readonly error: abstract new (...args: never[]) => Error;
  readonly message: RegExp;
}

const MASKED = /grants Note\.ssn only masked as "\*\*\*-\*\*-\{last4\}"/;
const NO_CREATOR = /does not grant field Note\.createdBy/;
const NEW = { owner: "alice", projectId: 1, status: "draft", title: "t" } as const;

const ATTEMPTS: readonly Attempt[] = [
  // A masked field: nothing but its mask comes out.
  { name: "filter on the masked ssn", run: (db, w) => db.read(w.alice, { model: N, fields: ["id"], where: { ssn: "123-45-6789" } }), error: CapabilityDenied, message: MASKED },
  { name: "startsWith on the masked ssn, digit by digit", run: (db, w) => db.read(w.alice, { model: N, fields: ["id"], where: { ssn: { startsWith: "1" } } }), error: CapabilityDenied, message: MASKED },
  { name: "contains on the masked ssn", run: (db, w) => db.read(w.alice, { model: N, fields: ["id"], where: { ssn: { contains: "45" } } }), error: CapabilityDenied, message: MASKED },
  { name: "range on the masked ssn (binary search)", run: (db, w) => db.read(w.alice, { model: N, fields: ["id"], where: { ssn: { lt: "5" } } }), error: CapabilityDenied, message: MASKED },
  { name: "in-list guess of the masked ssn", run: (db, w) => db.read(w.alice, { model: N, fields: ["id"], where: { ssn: { in: ["123-45-6789", "111-22-3333"] } } }), error: CapabilityDenied, message: MASKED },
  { name: "masked ssn returned and filtered on by its own mask", run: (db, w) => db.read(w.alice, { model: N, fields: ["ssn"], where: { ssn: "***-**-6789" } }), error: CapabilityDenied, message: MASKED },
  { name: "order by the masked ssn", run: (db, w) => db.read(w.alice, { model: N, fields: ["id"], orderBy: [{ field: "ssn" }] }), error: CapabilityDenied, message: MASKED },
  { name: "min of the masked ssn", run: (db, w) => db.aggregate(w.alice, { model: N, aggregates: { m: { fn: "min", field: "ssn" } } }), error: CapabilityDenied, message: MASKED },
  { name: "count of the masked ssn (how many are set)", run: (db, w) => db.aggregate(w.alice, { model: N, aggregates: { n: { fn: "count", field: "ssn" } } }), error: CapabilityDenied, message: MASKED },
  { name: "group by the masked ssn", run: (db, w) => db.aggregate(w.alice, { model: N, groupBy: ["ssn"], aggregates: { n: { fn: "count" } } }), error: CapabilityDenied, message: MASKED },
  { name: "count filtered by the masked ssn", run: (db, w) => db.aggregate(w.alice, { model: N, where: { ssn: { gt: "5" } }, aggregates: { n: { fn: "count" } } }), error: CapabilityDenied, message: MASKED },
  { name: "write the masked ssn", run: (db, w) => db.update(w.alice, { model: N, set: { ssn: "x" }, where: { id: 1 } }), error: CapabilityDenied, message: MASKED },
  { name: "update filtered by the masked ssn (its count answers)", run: (db, w) => db.update(w.alice, { model: N, set: { title: "x" }, where: { ssn: "123-45-6789" } }), error: CapabilityDenied, message: MASKED },
  { name: "delete filtered by the masked ssn", run: (db, w) => db.delete(w.alice, { model: N, where: { ssn: { startsWith: "1" } } }), error: CapabilityDenied, message: MASKED },
  { name: "masked ssn returned whole from an update", run: (db, w) => db.update(w.alice, { model: N, set: { title: "x" }, where: { id: 1 }, returning: ["ssn"] }), error: CapabilityDenied, message: MASKED },
  // Unmasking by narrowing: a link can only hide more.
  {
    name: "a narrowing that allows the masked ssn whole",
    run: (db, w) => db.read(narrow(w.alice, { db: [{ model: N, ops: ["read"], fieldActions: { ssn: "allow" } }] }), { model: N, fields: ["id"], where: { ssn: { startsWith: "1" } } }),
    error: CapabilityDenied,
    message: MASKED,
  },
  {
    name: "a narrowing with a wider mask, filtered on",
    run: (db, w) => db.read(narrow(w.alice, { db: [{ model: N, ops: ["read"], fieldActions: { ssn: { mask: "{first9}" } } }] }), { model: N, fields: ["id"], where: { ssn: "123-45-6789" } }),
    error: CapabilityDenied,
    message: /grants Note\.ssn only/,
  },
  // A denied field: absent from every answer, and from every question.
  { name: "select the denied creator", run: (db, w) => db.read(w.alice, { model: N, fields: ["id", "createdBy"] }), error: CapabilityDenied, message: NO_CREATOR },
  { name: "filter on the denied creator being null", run: (db, w) => db.read(w.alice, { model: N, fields: ["id"], where: { createdBy: null } }), error: CapabilityDenied, message: NO_CREATOR },
  { name: "order by the denied creator", run: (db, w) => db.read(w.alice, { model: N, fields: ["id"], orderBy: [{ field: "createdBy", direction: "desc" }] }), error: CapabilityDenied, message: NO_CREATOR },
  { name: "max of the denied creator", run: (db, w) => db.aggregate(w.alice, { model: N, aggregates: { m: { fn: "max", field: "createdBy" } } }), error: CapabilityDenied, message: NO_CREATOR },
  { name: "group by the denied creator", run: (db, w) => db.aggregate(w.alice, { model: N, groupBy: ["createdBy"], aggregates: { n: { fn: "count" } } }), error: CapabilityDenied, message: NO_CREATOR },
  { name: "create giving the denied creator", run: (db, w) => db.create(w.alice, { model: N, values: { id: 40, ...NEW, createdBy: "alice" } }), error: CapabilityDenied, message: NO_CREATOR },
  // Hashed and redacted fields of another model.
  { name: "filter a hashed project name by its value", run: (db, w) => db.read(w.alice, { model: P, fields: ["id"], where: { name: "Apollo" } }), error: CapabilityDenied, message: /grants Project\.name only hashed/ },
  { name: "order by a hashed project name", run: (db, w) => db.read(w.alice, { model: P, fields: ["id"], orderBy: [{ field: "name" }] }), error: CapabilityDenied, message: /grants Project\.name only hashed/ },
  { name: "group by a hashed project name", run: (db, w) => db.aggregate(w.alice, { model: P, groupBy: ["name"], aggregates: { n: { fn: "count" } } }), error: CapabilityDenied, message: /grants Project\.name only hashed/ },
  { name: "sum of a redacted budget", run: (db, w) => db.aggregate(w.alice, { model: P, aggregates: { s: { fn: "sum", field: "budget" } } }), error: CapabilityDenied, message: /grants Project\.budget only redacted/ },
  { name: "range on a redacted budget", run: (db, w) => db.read(w.alice, { model: P, fields: ["id"], where: { budget: { gt: 150 } } }), error: CapabilityDenied, message: /grants Project\.budget only redacted/ },
  { name: "avg of a denied project secret", run: (db, w) => db.aggregate(w.alice, { model: P, aggregates: { a: { fn: "min", field: "secret" } } }), error: CapabilityDenied, message: /does not grant field Project\.secret/ },
  // The principal's rows.
  { name: "read another tenant's notes", run: (db, w) => db.read(w.alice, { model: N, fields: ["id"], where: { tenant: "t2" } }), error: CapabilityDenied, message: /confines Note to rows where tenant = "t1"/ },
  { name: "count another tenant's notes", run: (db, w) => db.aggregate(w.alice, { model: N, where: { tenant: "t2" }, aggregates: { n: { fn: "count" } } }), error: CapabilityDenied, message: /tenant = "t1"/ },
  { name: "read another tenant's projects", run: (db, w) => db.read(w.alice, { model: P, fields: ["id"], where: { tenant: "t2" } }), error: CapabilityDenied, message: /confines Project to rows where tenant = "t1"/ },
  { name: "create a note in another tenant", run: (db, w) => db.create(w.alice, { model: N, values: { id: 41, ...NEW, tenant: "t2" } }), error: CapabilityDenied, message: /tenant = "t1"/ },
  { name: "move a note to another tenant", run: (db, w) => db.update(w.alice, { model: N, set: { tenant: "t2" }, where: { id: 1 } }), error: CapabilityDenied, message: /tenant = "t1"/ },
  { name: "give a note to another owner (a rule's field)", run: (db, w) => db.update(w.alice, { model: N, set: { owner: "bob" }, where: { id: 1 } }), error: CapabilityDenied, message: /row rule on owner, which an update may not change/ },
  { name: "create a draft in another's name", run: (db, w) => db.create(w.alice, { model: N, values: { id: 42, ...NEW, owner: "bob" } }), error: CapabilityDenied, message: /status != "draft" or owner = "alice", and the new row is not one/ },
  { name: "read another owner's notes through an own-notes narrowing", run: (db, w) => db.read(w.own, { model: N, fields: ["id"], where: { owner: "bob" } }), error: CapabilityDenied, message: /owner = "alice"/ },
  { name: "create a published note in another's name through an own-notes narrowing", run: (db, w) => db.create(w.own, { model: N, values: { id: 43, ...NEW, owner: "bob", status: "published" } }), error: CapabilityDenied, message: /owner = "alice"/ },
  { name: "delete another owner's notes through an own-notes narrowing", run: (db, w) => db.delete(w.own, { model: N, where: { owner: "bob" } }), error: CapabilityDenied, message: /owner = "alice"/ },
  {
    name: "another owner's draft through a narrowing that names that owner's scope",
    run: (db, w) => db.update(narrow(w.alice, { db: [{ model: N, ops: ["update"], scope: { owner: "bob" } }] }), { model: N, set: { title: "x" }, where: { owner: "alice" } }),
    error: CapabilityDenied,
    message: /owner = "bob"/,
  },
  {
    name: "a second rule for the same model, in another tenant, added by narrowing",
    run: (db, w) => db.read(narrow(w.alice, { db: [{ model: N, ops: ["read"], scope: { tenant: "t2" } }, { model: N, ops: ["read"] }] }), { model: N, fields: ["id"], where: { tenant: "t2" } }),
    error: CapabilityDenied,
    message: /tenant = "t1"/,
  },
  {
    name: "a principal with two tenants minted a principal.tenant policy",
    run: (_db, w) => Promise.resolve().then(() => w.mint.issue({ id: "admin", tenants: ["t1", "t2"] })),
    error: InvalidInput,
    message: /refers to principal\.tenant, but principal admin has 2 tenants/,
  },
  // Write policies.
  { name: "change an immutable field", run: (db, w) => db.update(w.alice, { model: N, set: { projectId: 3 }, where: { id: 1 } }), error: CapabilityDenied, message: /makes Note\.projectId immutable/ },
  { name: "change an immutable field through a narrowing that does not name it", run: (db, w) => db.update(w.own, { model: N, set: { projectId: 3 }, where: { id: 1 } }), error: CapabilityDenied, message: /link 0 makes Note\.projectId immutable/ },
  { name: "create without a required field", run: (db, w) => db.create(w.alice, { model: N, values: { id: 44, owner: "alice", projectId: 1, status: "draft" } }), error: CapabilityDenied, message: /requires Note\.title on every create/ },
  { name: "create under a rule ordering text (collation-dependent)", run: (db, w) => db.create(w.ordered, { model: N, values: { id: 45, ...NEW, title: "zebra" } }), error: CapabilityDenied, message: /ordering the text field title/ },
];

describe.each(NOTES_ENGINES)("policy bypass attempts on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "each is refused with its typed error, and runs no SQL", () => {
    let h: NotesHarness;
    let db: Api;

    beforeAll(async () => {
      h = await engine.open();
      await h.reset();
      db = api(createSqlDatabase({ schema: NOTES_SCHEMA, ...h.connection }));
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(() => {
      h.clearCounts();
    });

    it("has at least 40 attempts", () => {
      expect(ATTEMPTS.length).toBeGreaterThanOrEqual(40);
    });

    it.each(ATTEMPTS)("$name", async (attempt) => {
      const w = world();
      const tables = async () => [await h.rows("projects"), await h.rows("notes")];
      const before = await tables();
      h.clearCounts();
      const err = await attempt.run(db, w).then(
        () => null,
        (e: unknown) => e,
      );
      expect(h.executed()).toBe(0);
      expect(err).toBeInstanceOf(attempt.error);
      expect((err as Error).message).toMatch(attempt.message);
      expect(await tables()).toEqual(before);
    });

    it("what the grant allows still works: the masked ssn comes out masked, the principal's rows only", async () => {
      const { alice } = world();
      expect(await db.read(alice, { model: N, fields: ["id", "ssn"], orderBy: [{ field: "id" }] })).toEqual([
        { id: 1, ssn: "***-**-6789" },
        { id: 3, ssn: null },
        { id: 4, ssn: "***-**-3333" },
      ]);
    });
  });
});
