import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CapabilityDenied, createManualClock, createMint, InvalidInput, narrow, parseGrant, type Capability, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { AggregateQuery, CreateQuery, ReadQuery, UpdateQuery } from "../../src/resources/sql/query.ts";
import { NOTES_ENGINES, NOTES_SCHEMA, type NotesHarness } from "./sql-notes-fixture.ts";

/*
 * Write policies of a db rule: fields an update may not set (immutable),
 * fields a create must give (required), and a value set from the principal
 * on every create (a principal-bound scope); every link's lists apply. A
 * refused write runs no SQL. On both engines.
 */

const N = "Note";
const POLICY: Grant = {
  db: [
    {
      model: N,
      ops: ["read", "create", "update"],
      scope: { tenant: { principal: "tenant" }, createdBy: { principal: "user" } },
      immutable: ["projectId"],
      required: ["title", "status"],
      maxRows: 2,
    },
  ],
};
const alice = createMint({ issuer: "writes", clock: createManualClock(0), policy: () => POLICY }).issue({ id: "alice", tenants: ["t1"] });

const api = (db: SqlDatabase) => ({
  read: (cap: Capability, q: unknown) => db.read(cap as DbCapability<"read">, q as ReadQuery),
  aggregate: (cap: Capability, q: unknown) => db.aggregate(cap as DbCapability<"read">, q as AggregateQuery),
  create: (cap: Capability, q: unknown) => db.create(cap as DbCapability<"create">, q as CreateQuery),
  update: (cap: Capability, q: unknown) => db.update(cap as DbCapability<"update">, q as UpdateQuery),
});

describe("write policies in grants", () => {
  it("are validated: lists of field names", () => {
    const rule = (extra: unknown) => () => parseGrant({ db: [{ model: N, ops: ["update"], ...(extra as object) }] });
    expect(rule({ immutable: "projectId" })).toThrow(InvalidInput);
    expect(rule({ required: ["title; DROP"] })).toThrow(InvalidInput);
    expect(rule({ requireFilter: "yes" })).toThrow(InvalidInput);
    expect(rule({ immutable: ["projectId"], required: ["title"], requireFilter: true })()).toBeTruthy();
  });
});

describe.each(NOTES_ENGINES)("write policies on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "hold for every write, across links", () => {
    let h: NotesHarness;
    let db: ReturnType<typeof api>;

    beforeAll(async () => {
      h = await engine.open();
      db = api(createSqlDatabase({ schema: NOTES_SCHEMA, ...h.connection }));
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(async () => {
      await h.reset();
      h.clearCounts();
    });

    it("auto-sets the creator from the principal, and requires the required fields", async () => {
      await expect(db.create(alice, { model: N, values: { id: 20, owner: "alice", projectId: 1, status: "draft", title: "t" } })).resolves.toMatchObject({ count: 1 });
      expect((await h.rows("notes")).find((n) => n.id === 20)).toMatchObject({ tenant: "t1", created_by: "alice" });
      h.clearCounts();
      const err = await db.create(alice, { model: N, values: { id: 21, owner: "alice", projectId: 1, status: "draft" } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CapabilityDenied);
      expect((err as CapabilityDenied).message).toMatch(/link 0 requires Note\.title on every create: give it a value \(not null\)/);
      expect((err as CapabilityDenied).details.rule).toBe("db.required");
      await expect(db.create(alice, { model: N, values: { id: 23, owner: "alice", projectId: 1, status: "draft", title: "t", createdBy: "bob" } })).rejects.toThrow(/createdBy = "alice"/);
      expect(h.executed()).toBe(0);
    });

    it("refuses an update that sets an immutable field, saying what it may set", async () => {
      const err = await db.update(alice, { model: N, set: { projectId: 2 }, where: { id: 1 } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CapabilityDenied);
      expect((err as Error).message).toMatch(/link 0 makes Note\.projectId immutable: an update may not set it \(it may set id, tenant, owner, status, title, ssn, createdBy\)/);
      expect(h.executed()).toBe(0);
      // The rows of alice's own creation are in scope: none of the fixture's.
      await expect(db.update(alice, { model: N, set: { title: "x" }, where: { id: 1 } })).resolves.toMatchObject({ count: 0 });
    });

    it("a narrowing adds immutable and required fields; it cannot drop the root's", async () => {
      const child = narrow(alice, { db: [{ model: N, ops: ["create", "update"], immutable: ["status"], required: ["ssn"] }] });
      await expect(db.update(child, { model: N, set: { status: "x" }, where: { id: 1 } })).rejects.toThrow(/link 1 makes Note\.status immutable/);
      await expect(db.update(child, { model: N, set: { projectId: 3 }, where: { id: 1 } })).rejects.toThrow(/link 0 makes Note\.projectId immutable/);
      await expect(db.create(child, { model: N, values: { id: 24, owner: "alice", projectId: 1, status: "draft", title: "t" } })).rejects.toThrow(/link 1 requires Note\.ssn/);
      await expect(db.create(child, { model: N, values: { id: 24, owner: "alice", projectId: 1, status: "draft", ssn: "1" } })).rejects.toThrow(/link 0 requires Note\.title/);
      // The same shape as an allowed create, with null: checked per call, not once per shape.
      await expect(db.create(child, { model: N, values: { id: 25, owner: "alice", projectId: 1, status: "draft", title: "t", ssn: "1" } })).resolves.toMatchObject({ count: 1 });
      await expect(db.create(child, { model: N, values: { id: 26, owner: "alice", projectId: 1, status: "draft", title: "t", ssn: null } })).rejects.toThrow(/link 1 requires Note\.ssn on every create: give it a value \(not null\)/);
    });

    it("with requireFilter, refuses unfiltered updates and deletes, and reads with neither filter nor limit", async () => {
      const guarded = narrow(alice, { db: [{ model: N, ops: ["read", "update"], requireFilter: true }] });
      for (const call of [
        () => db.update(guarded, { model: N, set: { title: "all" }, where: {} }),
        () => db.update(guarded, { model: N, set: { title: "all" } }),
        () => db.read(guarded, { model: N, fields: ["id"] }),
        () => db.aggregate(guarded, { model: N, aggregates: { n: { fn: "count" } } }),
      ]) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(CapabilityDenied);
        expect((err as CapabilityDenied).message).toMatch(/link 1 requires every (update|read) of Note to give a filter/);
        expect((err as CapabilityDenied).details.rule).toBe("db.requireFilter");
      }
      expect(h.executed()).toBe(0);
      await expect(db.read(guarded, { model: N, fields: ["id"], limit: 2 })).resolves.toEqual([]);
      await expect(db.update(guarded, { model: N, set: { title: "one" }, where: { id: 1 } })).resolves.toMatchObject({ count: 0 });
    });

    it("bounds the rows one write may change by the rule's maxRows, naming it", async () => {
      for (const id of [30, 31, 32]) await db.create(alice, { model: N, values: { id, owner: "alice", projectId: 1, status: "draft", title: "t" } });
      const err = await db.update(alice, { model: N, set: { title: "all" }, where: {} }).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: "LimitExceeded", limit: "maxRows" });
      expect((await h.rows("notes")).filter((n) => n.title === "all")).toEqual([]);
    });
  });
});
