import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { authorize, CapabilityDenied, createManualClock, createMint, InvalidInput, narrow, parseGrant, type Capability, type Grant, type Principal } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { CreateQuery, DeleteQuery, ReadQuery, UpdateQuery } from "../../src/resources/sql/query.ts";
import { NOTES_ENGINES, NOTES_SCHEMA, type NotesHarness } from "./sql-notes-fixture.ts";

/*
 * Row scope and row rules from the principal: one written policy confines
 * every principal to its own tenant's rows, and to published notes or its
 * own; the values are bound when each link is made, so reads, updates and
 * deletes are filtered by them and creates get them. On both engines.
 */

const N = "Note";
const TENANT = { principal: "tenant" } as const;
const USER = { principal: "user" } as const;
/** One policy for everyone: your tenant's notes, published or your own. */
const POLICY: Grant = {
  db: [
    {
      model: N,
      ops: ["read", "create", "update", "delete"],
      scope: { tenant: TENANT },
      rows: { any: [{ field: "status", op: "ne", value: "draft" }, { field: "owner", op: "eq", value: USER }] },
    },
  ],
};
const mint = createMint({ issuer: "notes", clock: createManualClock(0), policy: () => POLICY });
const issue = (p: Principal) => mint.issue(p);

const api = (db: SqlDatabase) => ({
  read: (cap: Capability, q: unknown) => db.read(cap as DbCapability<"read">, q as ReadQuery),
  create: (cap: Capability, q: unknown) => db.create(cap as DbCapability<"create">, q as CreateQuery),
  update: (cap: Capability, q: unknown) => db.update(cap as DbCapability<"update">, q as UpdateQuery),
  delete: (cap: Capability, q: unknown) => db.delete(cap as DbCapability<"delete">, q as DeleteQuery),
});
const ids = (rows: readonly Record<string, unknown>[]) => rows.map((r) => r.id);
const byId = [{ field: "id" }] as const;

describe("principal references in grants", () => {
  it("are bound when the link is made: a root by its principal, a narrowing by its chain's", () => {
    const alice = issue({ id: "alice", tenants: ["t1"] });
    expect(alice.lineage[0]?.grant?.db?.[0]).toMatchObject({
      scope: { tenant: "t1" },
      rows: { any: [{ field: "status", op: "ne", value: "draft" }, { field: "owner", op: "eq", value: "alice" }] },
    });
    const own = narrow(alice, { db: [{ model: N, ops: ["read"], scope: { owner: USER } }] });
    expect(own.lineage[1]?.grant?.db?.[0]?.scope).toEqual({ owner: "alice" });
    // The kernel sees plain values: a request must name alice's own.
    const request = { action: "db.read", model: N, fields: ["id"], rows: [alice.lineage[0]?.grant?.db?.[0]?.rows ?? { field: "id", op: "eq", value: 0 }] } as const;
    expect(authorize(own, { ...request, scope: { tenant: "t1", owner: "alice" } }).allowed).toBe(true);
    expect(authorize(own, { ...request, scope: { tenant: "t1", owner: "bob" } }).allowed).toBe(false);
  });

  it("refuse principal.tenant for a principal with no tenant or several, naming the rule", () => {
    expect(() => issue({ id: "nobody" })).toThrow(InvalidInput);
    expect(() => issue({ id: "nobody" })).toThrow(/db rule for Note refers to principal\.tenant, but principal nobody has no tenant/);
    expect(() => issue({ id: "admin", tenants: ["t1", "t2"] })).toThrow(/principal admin has 2 tenants \(t1, t2\)/);
  });

  it("are validated: only user and tenant, never in a list", () => {
    const grant = (rule: unknown) => () => parseGrant({ db: [{ model: N, ops: ["read"], ...(rule as object) }] });
    expect(grant({ scope: { owner: { principal: "role" } } })).toThrow(InvalidInput);
    expect(grant({ scope: { owner: { principal: "user", extra: 1 } } })).toThrow(InvalidInput);
    expect(grant({ rows: { field: "owner", op: "in", value: { principal: "user" } } })).toThrow(/in takes a list/);
    expect(grant({ rows: { field: "owner", op: "in", value: [{ principal: "user" }] } })).toThrow(InvalidInput);
    expect(grant({ rows: { field: "owner", op: "startsWith", value: USER } })()).toBeTruthy();
  });
});

describe.each(NOTES_ENGINES)("principal-bound rows on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "every principal reaches its own rows", () => {
    let h: NotesHarness;
    let db: ReturnType<typeof api>;
    const alice = issue({ id: "alice", tenants: ["t1"] });
    const bob = issue({ id: "bob", tenants: ["t1"] });
    const carol = issue({ id: "carol", tenants: ["t2"] });

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

    it("reads: each principal sees its tenant's published notes and its own drafts", async () => {
      expect(ids(await db.read(alice, { model: N, fields: ["id"], orderBy: byId }))).toEqual([1, 3, 4]);
      expect(ids(await db.read(bob, { model: N, fields: ["id"], orderBy: byId }))).toEqual([2, 3, 4]);
      expect(ids(await db.read(carol, { model: N, fields: ["id"], orderBy: byId }))).toEqual([5]);
      // Asking for another's draft or another tenant's rows finds nothing or is refused.
      expect(await db.read(alice, { model: N, fields: ["id"], where: { id: 2 } })).toEqual([]);
      await expect(db.read(alice, { model: N, fields: ["id"], where: { tenant: "t2" } })).rejects.toThrow(/confines Note to rows where tenant = "t1"/);
    });

    it("updates and deletes only the principal's rows, and cannot move one to another owner or tenant", async () => {
      expect(await db.update(alice, { model: N, set: { title: "x" }, where: { id: { in: [1, 2, 5] } } })).toMatchObject({ count: 1 });
      expect(await db.delete(alice, { model: N, where: { id: { in: [2, 5] } } })).toMatchObject({ count: 0 });
      await expect(db.update(alice, { model: N, set: { tenant: "t2" }, where: { id: 1 } })).rejects.toThrow(CapabilityDenied);
      await expect(db.update(alice, { model: N, set: { owner: "bob" }, where: { id: 1 } })).rejects.toThrow(/row rule on owner, which an update may not change/);
      const notes = await h.rows("notes");
      expect(notes.map((n) => [n.id, n.title, n.owner, n.tenant])).toEqual([
        [1, "x", "alice", "t1"],
        [2, "bob's draft", "bob", "t1"],
        [3, "bob's post", "bob", "t1"],
        [4, "alice's post", "alice", "t1"],
        [5, "carol's post", "carol", "t2"],
      ]);
    });

    it("creates: the tenant and, under an owner scope, the owner are set from the principal", async () => {
      const own = narrow(alice, { db: [{ model: N, ops: ["read", "create"], scope: { owner: USER } }] });
      await expect(db.create(own, { model: N, values: { id: 10, projectId: 1, status: "draft", title: "new" } })).resolves.toMatchObject({ count: 1 });
      expect((await h.rows("notes")).find((n) => n.id === 10)).toMatchObject({ tenant: "t1", owner: "alice" });
      expect(ids(await db.read(own, { model: N, fields: ["id"], orderBy: byId }))).toEqual([1, 4, 10]);
      h.clearCounts();
      await expect(db.create(own, { model: N, values: { id: 11, owner: "bob", projectId: 1, status: "published", title: "forged" } })).rejects.toThrow(/confines Note to rows where owner = "alice"/);
      await expect(db.create(bob, { model: N, values: { id: 12, owner: "alice", projectId: 1, status: "draft", title: "forged" } })).rejects.toThrow(
        /confines Note to rows where status != "draft" or owner = "bob", and the new row is not one/,
      );
      await expect(db.create(carol, { model: N, values: { id: 13, tenant: "t1", owner: "carol", projectId: 1, status: "published", title: "x" } })).rejects.toThrow(/tenant = "t2"/);
      expect(h.executed()).toBe(0);
    });

    it("ANDs a narrowing's principal-bound rule with the root's", async () => {
      const drafts = narrow(bob, { db: [{ model: N, ops: ["read"], rows: { field: "status", op: "eq", value: "draft" } }] });
      expect(ids(await db.read(drafts, { model: N, fields: ["id"] }))).toEqual([2]);
    });
  });
});
