import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  ApprovalRefused,
  ApprovalRequired,
  CapabilityDenied,
  createApprovals,
  createManualClock,
  createMint,
  eventSink,
  Expired,
  InvalidInput,
  LimitExceeded,
  narrow,
  Revoked,
  type Capability,
  type DbRequest,
  type DbRule,
  type Grant,
} from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { AggregateQuery, CreateQuery, DeleteQuery, ReadQuery, UpdateQuery } from "../../src/resources/sql/query.ts";
import { NOTES_ENGINES, NOTES_RELATED_SCHEMA, type NotesHarness } from "./sql-notes-fixture.ts";

/*
 * Bypass attempts against the database's policy surface, on both engines:
 * probing a masked, hashed, redacted or denied field through filters,
 * order, aggregates and group by; unmasking by narrowing; leaving the
 * principal's rows through filters, writes, a second rule or a narrowing;
 * breaking the write policies; using an approval of one write for another;
 * escaping a model's grant through the rows a read includes from another.
 * Each fails with its typed error before any SQL runs, and no table changes.
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

/** Deletes and updates of notes need bob's approval of the exact write. */
const APPROVED_WRITES: Grant = { ...POLICY, approval: [{ actions: ["db.delete", "db.update"], approvers: ["bob"] }] };

/** POLICY with includes: a note's project (some fields, two levels below a note), a project's notes (one level). */
const INCLUDING: Grant = {
  db: [
    { ...(POLICY.db?.[0] as DbRule), ops: ["read"], include: { project: { fields: ["id", "tenant", "name"] } }, maxIncludeDepth: 2 },
    { ...(POLICY.db?.[1] as DbRule), include: { notes: {} } },
  ],
};

function world() {
  const clock = createManualClock(0);
  const mint = createMint({ issuer: "surface", clock, policy: (p) => (p.id === "carol" ? { tools: [] } : p.id === "bob" ? POLICY : p.id === "alice" ? POLICY : APPROVED_WRITES) });
  const alice = mint.issue({ id: "alice", tenants: ["t1"] });
  const includer = createMint({ issuer: "surface-includes", clock: createManualClock(0), policy: () => INCLUDING }).issue({ id: "alice", tenants: ["t1"] });
  const approvals = createApprovals({ audit: eventSink(() => undefined), clock, waitSeconds: 60, pollMs: 2, mints: [mint.id] });
  return {
    mint,
    alice,
    includer,
    clock,
    approvals,
    /** Alice, under the policy whose deletes and updates need approval. */
    asker: mint.issue({ id: "alice-approved", tenants: ["t1"] }),
    bob: mint.issue({ id: "bob", tenants: ["t1"] }),
    carol: mint.issue({ id: "carol", tenants: ["t1"] }),
    /** The capability an approved call ran with, kept past its call. */
    kept: [] as Capability[],
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
  /** What happens before the attempt (its SQL is not the attempt's). */
  readonly setup?: (db: Api, w: World) => Promise<unknown>;
  readonly run: (db: Api, w: World) => Promise<unknown>;
  readonly error: abstract new (...args: never[]) => Error;
  readonly message: RegExp;
}

const MASKED = /grants Note\.ssn only masked as "\*\*\*-\*\*-\{last4\}"/;
const NO_CREATOR = /does not grant field Note\.createdBy/;
const NEW = { owner: "alice", projectId: 1, status: "draft", title: "t" } as const;

/** The request the database makes for a delete or update of one note filtered by id, as an approval is bound to it. */
const noteRequest = (op: "delete" | "update", fields: readonly string[]): DbRequest => ({
  action: `db.${op}`,
  model: N,
  fields,
  scope: { tenant: "t1" },
  rows: [{ any: [{ field: "status", op: "ne", value: "draft" }, { field: "owner", op: "eq", value: "alice-approved" }] }],
});
// Note 4 is a published note of t1; note 3 another.
const DELETE_4 = { model: N, where: { id: 4 } } as const;
const UPDATE_4 = { model: N, set: { title: "fixed" }, where: { id: 4 } } as const;

/** The first pending approval request, once the call has made it. */
async function pending(w: World) {
  for (let i = 0; i < 1000; i++) {
    const [first] = await w.approvals.list();
    if (first !== undefined) return first;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error("no approval request was made");
}

/** Asks approval of deleting note 4, has `approver` try to approve it, and throws what that attempt threw once bob has denied the call. */
async function approvalBy(db: Api, w: World, approver: Capability): Promise<never> {
  const call = w.approvals.run(w.asker, noteRequest("delete", ["id"]), { args: DELETE_4 }, (approved) => db.delete(approved, DELETE_4));
  const refused = await w.approvals.approve((await pending(w)).id, approver).then(
    () => null,
    (e: unknown) => e,
  );
  await w.approvals.deny((await pending(w)).id, w.bob, "cleaning up");
  await expect(call).rejects.toThrow(ApprovalRefused);
  throw refused;
}

/** Asks approval of `query` (bound to `request`), has bob approve it, then runs `act` with the approved capability. */
async function approvedThen(w: World, request: DbRequest, query: object, act: (approved: Capability) => Promise<unknown>): Promise<unknown> {
  const call = w.approvals.run(w.asker, request, { args: query }, act);
  await w.approvals.approve((await pending(w)).id, w.bob);
  return call;
}

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
  // Approval of the exact write: bound to its filters and values, single-use, short-lived, never the requester's own.
  { name: "a write that needs approval, made without one", run: (db, w) => db.delete(w.asker, DELETE_4), error: ApprovalRequired, message: /requires human approval of this exact call \(1 approver\)/ },
  {
    name: "an approval replayed: the approved delete's capability used again after its call",
    setup: (db, w) =>
      approvedThen(w, noteRequest("delete", ["id"]), DELETE_4, async (approved) => {
        w.kept.push(approved);
        // The approved delete itself: its SQL is the setup's.
        return db.delete(approved, DELETE_4);
      }),
    run: (db, w) => db.delete(w.kept[0] as Capability, { model: N, where: { id: 3 } }),
    error: Revoked,
    message: /was revoked: approved call .* has returned/,
  },
  {
    name: "an approval replayed: the executed request approved again",
    setup: (db, w) => approvedThen(w, noteRequest("delete", ["id"]), DELETE_4, (approved) => db.delete(approved, DELETE_4)),
    run: async (_db, w) => w.approvals.approve((await w.approvals.list({ all: true }))[0]?.id ?? "", w.bob),
    error: InvalidInput,
    message: /is no longer pending: it was executed/,
  },
  {
    name: "an approval of one row's delete used for another row",
    run: (db, w) => approvedThen(w, noteRequest("delete", ["id"]), DELETE_4, (approved) => db.delete(approved, { model: N, where: { id: 3 } })),
    error: ApprovalRequired,
    message: /requires human approval of this exact call/,
  },
  {
    name: "an approval of one update used with other values on the same row",
    run: (db, w) => approvedThen(w, noteRequest("update", ["id", "title"]), UPDATE_4, (approved) => db.update(approved, { ...UPDATE_4, set: { title: "defaced" } })),
    error: ApprovalRequired,
    message: /requires human approval of this exact call/,
  },
  {
    name: "an approval of an update used for a delete of the same row",
    run: (db, w) => approvedThen(w, noteRequest("update", ["id", "title"]), UPDATE_4, (approved) => db.delete(approved, DELETE_4)),
    error: ApprovalRequired,
    message: /requires human approval of this exact call/,
  },
  {
    name: "an approved capability used after its 60 seconds",
    run: (db, w) =>
      approvedThen(w, noteRequest("delete", ["id"]), DELETE_4, (approved) => {
        w.clock.advance(61_000);
        return db.delete(approved, DELETE_4);
      }),
    error: Expired,
    message: /expired at/,
  },
  {
    name: "an approval given after the request expired",
    run: async (db, w) => {
      const call = w.approvals.run(w.asker, noteRequest("delete", ["id"]), { args: DELETE_4 }, (approved) => db.delete(approved, DELETE_4));
      const request = await pending(w);
      w.clock.advance(61_000);
      const late = await w.approvals.approve(request.id, w.bob).then(
        () => null,
        (e: unknown) => e,
      );
      await expect(call).rejects.toThrow(ApprovalRefused);
      throw late;
    },
    error: InvalidInput,
    message: /is no longer pending: it was expired/,
  },
  {
    name: "an approval by the requester themselves",
    run: (db, w) => approvalBy(db, w, w.mint.issue({ id: "alice-approved", tenants: ["t1"] })),
    error: CapabilityDenied,
    message: /alice-approved may not approve or deny a call of their own/,
  },
  {
    name: "an approval by someone the rule does not name",
    run: (db, w) => approvalBy(db, w, w.carol),
    error: CapabilityDenied,
    message: /carol is not an approver of this call/,
  },
  // Includes: the included rows obey their own model's grant, and the relation must be granted by every link.
  {
    name: "include a model the capability does not grant",
    run: (db, w) => db.read(narrow(w.includer, { db: [{ model: N, ops: ["read"], include: { project: {} } }] }), { model: N, fields: ["id"], include: { project: {} } }),
    error: CapabilityDenied,
    message: /link 1 \([^)]+\) does not grant read on model Project/,
  },
  { name: "include a relation the grant does not name", run: (db, w) => db.read(w.alice, { model: P, fields: ["id"], include: { notes: {} } }), error: CapabilityDenied, message: /link 0 does not let a read of Project include notes; the capability lets it include no relation/ },
  {
    name: "a narrowing that adds a relation its parent does not allow",
    run: (db, w) => db.read(narrow(w.alice, { db: [{ model: P, ops: ["read"], include: { notes: {} } }, { model: N, ops: ["read"] }] }), { model: P, fields: ["id"], include: { notes: {} } }),
    error: CapabilityDenied,
    message: /link 0 does not let a read of Project include notes/,
  },
  {
    name: "include cycle note → project → notes → project, deeper than the grant allows",
    run: (db, w) => db.read(w.includer, { model: N, fields: ["id"], include: { project: { include: { notes: { include: { project: {} } } } } } }),
    error: CapabilityDenied,
    message: /link 0 lets includes nest at most 2 levels below a read of Note, and this include of project nests 3/,
  },
  {
    name: "a narrowing that raises the include depth",
    run: (db, w) =>
      db.read(narrow(w.includer, { db: [{ model: N, ops: ["read"], include: { project: {} }, maxIncludeDepth: 8 }, { model: P, ops: ["read"], include: { notes: {} }, maxIncludeDepth: 8 }] }), {
        model: N,
        fields: ["id"],
        include: { project: { include: { notes: { include: { project: {} } } } } },
      }),
    error: CapabilityDenied,
    message: /link 0 lets includes nest at most 2 levels/,
  },
  {
    name: "an include cycle deeper than the resource's maxIncludeDepth",
    run: (db, w) => db.read(w.includer, { model: N, fields: ["id"], include: { project: { include: { notes: { include: { project: { include: { notes: {} } } } } } } } }),
    error: LimitExceeded,
    message: /nests includes 4 levels deep; one read may nest at most 3 \(maxIncludeDepth\)/,
  },
  { name: "filter included notes on the denied creator", run: (db, w) => db.read(w.includer, { model: P, fields: ["id"], include: { notes: { fields: ["id"], where: { createdBy: "alice" } } } }), error: CapabilityDenied, message: NO_CREATOR },
  { name: "return the denied creator of included notes", run: (db, w) => db.read(w.includer, { model: P, fields: ["id"], include: { notes: { fields: ["id", "createdBy"] } } }), error: CapabilityDenied, message: NO_CREATOR },
  { name: "order included notes by the masked ssn", run: (db, w) => db.read(w.includer, { model: P, fields: ["id"], include: { notes: { fields: ["id"], orderBy: [{ field: "ssn" }] } } }), error: CapabilityDenied, message: MASKED },
  { name: "filter included notes on the masked ssn", run: (db, w) => db.read(w.includer, { model: P, fields: ["id"], include: { notes: { fields: ["id"], where: { ssn: { startsWith: "1" } } } } }), error: CapabilityDenied, message: MASKED },
  { name: "filter an included project by its hashed name", run: (db, w) => db.read(w.includer, { model: N, fields: ["id"], include: { project: { fields: ["id"], where: { name: "Apollo" } } } }), error: CapabilityDenied, message: /grants Project\.name only hashed/ },
  { name: "include another tenant's project by filtering on its tenant", run: (db, w) => db.read(w.includer, { model: N, fields: ["id"], include: { project: { fields: ["id"], where: { tenant: "t2" } } } }), error: CapabilityDenied, message: /confines Project to rows where tenant = "t1"/ },
  { name: "include another tenant's notes by filtering on their tenant", run: (db, w) => db.read(w.includer, { model: P, fields: ["id"], include: { notes: { fields: ["id"], where: { tenant: "t2" } } } }), error: CapabilityDenied, message: /confines Note to rows where tenant = "t1"/ },
  {
    name: "include a project outside a narrowing to one project",
    run: (db, w) => db.read(narrow(w.includer, { db: [{ model: N, ops: ["read"], include: { project: {} } }, { model: P, ops: ["read"], scope: { id: 2 } }] }), { model: N, fields: ["id"], include: { project: { where: { id: 1 } } } }),
    error: CapabilityDenied,
    message: /confines Project to rows where id = 2/,
  },
  { name: "include a project field outside the relation's field list", run: (db, w) => db.read(w.includer, { model: N, fields: ["id"], include: { project: { fields: ["id", "budget"] } } }), error: CapabilityDenied, message: /lets a read of Note include project naming only the fields id, tenant, name of Project, and this include names budget/ },
  { name: "filter an included project on a field outside the relation's field list", run: (db, w) => db.read(w.includer, { model: N, fields: ["id"], include: { project: { fields: ["id"], where: { budget: { gt: 150 } } } } }), error: CapabilityDenied, message: /include project naming only the fields id, tenant, name of Project, and this include names budget/ },
  { name: "include a relation the schema does not declare", run: (db, w) => db.read(w.includer, { model: N, fields: ["id"], include: { owner: {} } }), error: InvalidInput, message: /include: Note has no relation "owner"/ },
];

describe.each(NOTES_ENGINES)("policy bypass attempts on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "each is refused with its typed error, and runs no SQL", () => {
    let h: NotesHarness;
    let db: Api;

    beforeAll(async () => {
      h = await engine.open();
      await h.reset();
      db = api(createSqlDatabase({ schema: NOTES_RELATED_SCHEMA, ...h.connection }));
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
      await h.reset();
      await attempt.setup?.(db, w);
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

    it("a refusal tells the model what the capability allows, naming nothing it withholds", async () => {
      const { alice } = world();
      const narrowed = narrow(alice, { db: [{ model: N, ops: ["read"], fieldActions: { owner: "deny", title: "deny" } }] });
      const field = await db.read(narrowed, { model: N, fields: ["id", "title"] }).catch((e: unknown) => e);
      expect(field).toBeInstanceOf(CapabilityDenied);
      const message = (field as Error).message;
      expect(message).toMatch(/does not grant field Note\.title; a read of Note may use id, tenant, projectId, status, and return only as shown ssn \(masked\)$/);
      for (const withheld of ["owner", "createdBy", "Project"]) expect(message).not.toContain(withheld);
      const op = await db.delete(narrowed, { model: N, where: { id: 1 } }).catch((e: unknown) => e);
      expect((op as Error).message).toMatch(/does not grant delete on model Note; on Note this capability grants read$/);
      const model = await db.read(narrow(alice, { db: [{ model: P, ops: ["read"] }] }), { model: N, fields: ["id"] }).catch((e: unknown) => e);
      expect((model as Error).message).toMatch(/does not grant read on model Note; this capability grants no operation on Note$/);
      expect(h.executed()).toBe(0);
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
