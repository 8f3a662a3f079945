import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openAuditStore } from "../../src/audit/open.ts";
import { CapabilityDenied, createManualClock, createMint, eventSink, InvalidInput, narrow, parseGrant, type AuditEvent, type Capability, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import { checkGrants } from "../../src/resources/sql/grant-check.ts";
import type { CreateQuery, DeleteQuery, ReadQuery, UpdateQuery } from "../../src/resources/sql/query.ts";
import { NOTES_ENGINES, NOTES_SCHEMA, type NotesHarness } from "./sql-notes-fixture.ts";

/*
 * What a write leaves in the audit log, and the write policies that need
 * it: a required reason (recorded in the event), fields auto-set from the
 * principal (distinct from the row scope), and the rows changed, before and
 * after, limited to what the writing capability may see. On both engines.
 */

const N = "Note";
const tenantScope = { tenant: { principal: "tenant" as const } };

const api = (db: SqlDatabase) => ({
  read: (cap: Capability, q: unknown) => db.read(cap as DbCapability<"read">, q as ReadQuery),
  create: (cap: Capability, q: unknown) => db.create(cap as DbCapability<"create">, q as CreateQuery),
  update: (cap: Capability, q: unknown) => db.update(cap as DbCapability<"update">, q as UpdateQuery),
  delete: (cap: Capability, q: unknown) => db.delete(cap as DbCapability<"delete">, q as DeleteQuery),
});

const issue = (rule: Record<string, unknown>): Capability => {
  const grant = { db: [{ model: N, ops: ["read", "create", "update", "delete"], scope: tenantScope, ...rule }] } as Grant;
  return createMint({ issuer: "writes", clock: createManualClock(0), policy: () => grant }).issue({ id: "alice", tenants: ["t1"] });
};

const denial = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CapabilityDenied);
  return err as CapabilityDenied;
};

describe("write policies in grants: requireReason and autoSet", () => {
  it("are validated: a boolean, and principal sources by field", () => {
    const rule = (extra: unknown) => () => parseGrant({ db: [{ model: N, ops: ["create"], ...(extra as object) }] });
    expect(rule({ requireReason: "yes" })).toThrow(InvalidInput);
    expect(rule({ autoSet: { createdBy: "alice" } })).toThrow(InvalidInput);
    expect(rule({ autoSet: { createdBy: { principal: "user" } } })).toThrow(InvalidInput);
    expect(rule({ autoSet: { "created by": "principal.user" } })).toThrow(InvalidInput);
    expect(rule({ requireReason: true, autoSet: { createdBy: "principal.user", tenant: "principal.tenant" } })()).toBeTruthy();
  });

  it("are checked against the schema: an auto-set field the model lacks is listed", () => {
    expect(() => {
      checkGrants(NOTES_SCHEMA, [{ db: [{ model: N, ops: ["create"], autoSet: { author: "principal.user" } }] }]);
    }).toThrow(/grants\.0\.db\.0\.autoSet: Note has no field author/);
  });

  it("a reason is 1 to 1000 characters of text", async () => {
    const db = api(createSqlDatabase({ schema: NOTES_SCHEMA, sqlite: new Database(":memory:") }));
    const cap = issue({});
    for (const reason of ["", "   ", 7, "x".repeat(1001)]) {
      await expect(db.update(cap, { model: N, set: { title: "x" }, where: { id: 1 }, reason })).rejects.toThrow(/query\.reason must be a sentence of 1 to 1000 characters/);
    }
    await expect(db.read(cap, { model: N, fields: ["id"], reason: "why" })).rejects.toThrow(/query\.reason is not part of a query/);
  });
});

describe.each(NOTES_ENGINES)("audited writes on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "record the reason and the rows changed", () => {
    let h: NotesHarness;
    let events: AuditEvent[];
    let db: ReturnType<typeof api>;

    beforeAll(async () => {
      h = await engine.open();
      db = api(createSqlDatabase({ schema: NOTES_SCHEMA, ...h.connection, audit: eventSink((e) => void events.push(e)) }));
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(async () => {
      await h.reset();
      h.clearCounts();
      events = [];
    });

    it("requireReason refuses a write without a reason before any SQL, and records the reason given", async () => {
      const cap = issue({ requireReason: true });
      for (const call of [
        () => db.update(cap, { model: N, set: { title: "x" }, where: { id: 1 } }),
        () => db.delete(cap, { model: N, where: { id: 1 } }),
        () => db.create(cap, { model: N, values: { id: 9, owner: "alice", projectId: 1, status: "draft", title: "t" } }),
      ]) {
        const err = await denial(call());
        expect(err.message).toMatch(/link 0 requires a reason on every (update|delete|create) of Note: give query\.reason/);
        expect(err.details.rule).toBe("db.requireReason");
      }
      expect(h.executed()).toBe(0);
      expect(events.map((e) => [e.request.action, e.decision.allowed, e.reason])).toEqual([
        ["db.update", false, undefined],
        ["db.delete", false, undefined],
        ["db.create", false, undefined],
      ]);
      // Reads need none.
      await expect(db.read(cap, { model: N, fields: ["id"], where: { id: 1 } })).resolves.toEqual([{ id: 1 }]);
      await expect(db.update(cap, { model: N, set: { title: "fixed" }, where: { id: 1 }, reason: "typo in the title, ticket 42" })).resolves.toMatchObject({ count: 1 });
      expect(events.at(-1)).toMatchObject({ request: { action: "db.update" }, decision: { allowed: true }, reason: "typo in the title, ticket 42" });
      // A narrowing adds the requirement; a root without it is not asked.
      const child = narrow(issue({}), { db: [{ model: N, ops: ["delete"], requireReason: true }] });
      await expect(db.delete(child, { model: N, where: { id: 2 } })).rejects.toThrow(/link 1 requires a reason on every delete of Note/);
      await expect(db.delete(issue({}), { model: N, where: { id: 2 } })).resolves.toMatchObject({ count: 1 });
    });

    it("autoSet sets a field from the principal on create without confining reads, and no write may set it otherwise", async () => {
      const cap = issue({ autoSet: { createdBy: "principal.user" } });
      await expect(db.create(cap, { model: N, values: { id: 20, owner: "alice", projectId: 1, status: "draft", title: "t" } })).resolves.toMatchObject({ count: 1 });
      await expect(db.create(cap, { model: N, values: { id: 21, owner: "alice", projectId: 1, status: "draft", title: "t", createdBy: "alice" } })).resolves.toMatchObject({ count: 1 });
      expect((await h.rows("notes")).filter((n) => (n.id as number) >= 20).map((n) => [n.id, n.created_by])).toEqual([
        [20, "alice"],
        [21, "alice"],
      ]);
      h.clearCounts();
      const forged = await denial(db.create(cap, { model: N, values: { id: 22, owner: "alice", projectId: 1, status: "draft", title: "t", createdBy: "bob" } }));
      expect(forged.message).toMatch(/link 0 sets Note\.createdBy from principal\.user on every create: leave it out, or give the principal's own value/);
      expect(forged.details.rule).toBe("db.autoSet");
      const moved = await denial(db.update(cap, { model: N, set: { createdBy: "bob" }, where: { id: 20 } }));
      expect(moved.message).toMatch(/link 0 sets Note\.createdBy from principal\.user on create: an update may not set it/);
      expect(h.executed()).toBe(0);
      // Unlike a scope, it confines nothing: alice reads every note of her tenant, whoever created it.
      await expect(db.read(cap, { model: N, fields: ["id"], orderBy: [{ field: "id" }] })).resolves.toEqual([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }, { id: 20 }, { id: 21 }]);
      // A narrowing's autoSet applies too; principal.tenant takes the principal's one tenant.
      const child = narrow(issue({}), { db: [{ model: N, ops: ["create"], autoSet: { owner: "principal.user", tenant: "principal.tenant" } }] });
      await expect(db.create(child, { model: N, values: { id: 23, projectId: 1, status: "draft", title: "t" } })).resolves.toMatchObject({ count: 1 });
      expect((await h.rows("notes")).find((n) => n.id === 23)).toMatchObject({ owner: "alice", tenant: "t1" });
      const twoTenants = createMint({ issuer: "w", policy: () => ({ db: [{ model: N, ops: ["read", "create"], autoSet: { tenant: "principal.tenant" } }] }) }).issue({ id: "dana", tenants: ["t1", "t2"] });
      await expect(db.create(twoTenants, { model: N, values: { id: 24, owner: "dana", projectId: 1, status: "draft", title: "t" } })).rejects.toThrow(
        /sets Note\.tenant from principal\.tenant, which cannot be done: the principal dana has 2 tenants, not one/,
      );
      await expect(db.read(twoTenants, { model: N, fields: ["id"], where: { id: 5 } })).resolves.toEqual([{ id: 5 }]);
    });

    it("records the rows an update, a delete and a create changed, before and after, with only the fields the grant shows", async () => {
      const cap = issue({ fields: ["id", "tenant", "owner", "status", "title", "ssn"], fieldActions: { ssn: "deny", owner: "redact" } });
      await expect(db.update(cap, { model: N, set: { status: "published" }, where: { status: "draft" }, returning: ["id"], reason: "publish the drafts" })).resolves.toEqual({
        count: 2,
        rows: expect.arrayContaining([{ id: 1 }, { id: 2 }]) as unknown,
      });
      await expect(db.delete(cap, { model: N, where: { id: 3 } })).resolves.toEqual({ count: 1, rows: [] });
      const [update, del] = events;
      const byId = (rows: readonly Record<string, unknown>[] | undefined) => [...(rows ?? [])].sort((a, b) => (a.id as number) - (b.id as number));
      expect(update?.outcome).toMatchObject({ ok: true });
      const changes = update?.outcome.ok === true ? update.outcome.changes : undefined;
      expect(byId(changes?.before)).toEqual([
        { id: 1, tenant: "t1", owner: "[redacted]", status: "draft", title: "alice's draft" },
        { id: 2, tenant: "t1", owner: "[redacted]", status: "draft", title: "bob's draft" },
      ]);
      expect(byId(changes?.after)).toEqual([
        { id: 1, tenant: "t1", owner: "[redacted]", status: "published", title: "alice's draft" },
        { id: 2, tenant: "t1", owner: "[redacted]", status: "published", title: "bob's draft" },
      ]);
      expect(update?.reason).toBe("publish the drafts");
      expect(del?.outcome).toMatchObject({ ok: true, changes: { before: [{ id: 3, tenant: "t1", owner: "[redacted]", status: "published", title: "bob's post" }], after: [] } });
      // A create's row as written, with the scope's value; the capability of the create reaches four fields.
      events = [];
      const writer = issue({ fields: ["id", "tenant", "owner", "projectId", "status", "title"] });
      await db.create(writer, { model: N, values: { id: 31, owner: "alice", projectId: 2, status: "draft", title: "new" } });
      expect(events[0]?.outcome).toMatchObject({ ok: true, changes: { before: [], after: [{ id: 31, tenant: "t1", owner: "alice", projectId: 2, status: "draft", title: "new" }] } });
      // A write whose limit it passes changes nothing and records no rows.
      events = [];
      await expect(db.update(issue({ maxRows: 1 }), { model: N, set: { title: "all" }, where: { tenant: "t1" } })).rejects.toMatchObject({ name: "LimitExceeded" });
      expect(events[0]?.outcome).toMatchObject({ ok: false, errorCode: "ERR_LIMIT_EXCEEDED" });
      expect((await h.rows("notes")).filter((n) => n.title === "all")).toEqual([]);
    });
  });
});

describe("the audit log holds no value of a field the writing capability may not see", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "agentcap-write-audit-"));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ["keep", true],
    ["values", false],
  ] as const)("with dbRows %s: a denied field never, a masked one only masked, and the log verifies", async (dbRows, shownValues) => {
    const path = join(dir, `audit-${dbRows}.db`);
    const store = await openAuditStore({ kind: "sqlite", path, redaction: { dbRows } });
    const sqlite = new Database(":memory:");
    sqlite.exec(
      "CREATE TABLE notes (id integer PRIMARY KEY, tenant text NOT NULL, owner text NOT NULL, project_id integer NOT NULL, status text NOT NULL, title text NOT NULL, ssn text, created_by text)",
    );
    sqlite.exec("INSERT INTO notes VALUES (1, 't1', 'alice', 1, 'draft', 'Quarterly plan', '123-45-6789', 'CreatorSecret')");
    sqlite.exec("INSERT INTO notes VALUES (2, 't1', 'alice', 1, 'draft', 'Second plan', '987-65-4321', 'CreatorSecret')");
    try {
      const db = api(createSqlDatabase({ schema: { Note: NOTES_SCHEMA.Note as NonNullable<(typeof NOTES_SCHEMA)["Note"]> }, sqlite, audit: store }));
      const cap = issue({ fieldActions: { ssn: { mask: "***-**-{last4}" }, createdBy: "deny" } });
      await db.update(cap, { model: N, set: { status: "published" }, where: { id: 1 }, reason: "ready" });
      await db.delete(cap, { model: N, where: { id: 2 } });
      await db.create(cap, { model: N, values: { id: 3, owner: "alice", projectId: 1, status: "draft", title: "Third plan" } });
      const logged = new Database(path, { readonly: true });
      const text = (logged.prepare("SELECT body FROM audit_events").all() as { body: string }[]).map((r) => r.body).join("\n");
      const links = (logged.prepare("SELECT summary FROM audit_links").all() as { summary: string }[]).map((r) => r.summary).join("\n");
      logged.close();
      for (const secret of ["123-45-6789", "987-65-4321", "123-45", "987-65", "CreatorSecret"]) {
        expect(text).not.toContain(secret);
        expect(links).not.toContain(secret);
      }
      // The denied field is not even named in the events (its name is in the grant the links record).
      expect(text).not.toContain("createdBy");
      expect(text.includes("***-**-6789")).toBe(shownValues);
      expect(text.includes("Quarterly plan")).toBe(shownValues);
      expect(text).toContain('"reason":"ready"');
      await expect(store.verify()).resolves.toMatchObject({ ok: true, openIntentCount: 0 });
      const [event] = (await store.query({ action: "db.update" })).map((r) => r.event);
      expect(event?.outcome).toMatchObject({ ok: true, changes: { before: [{ id: shownValues ? 1 : "[redacted]" }], after: [{ status: shownValues ? "published" : "[redacted]" }] } });
      expect(event?.reason).toBe("ready");
    } finally {
      await store.close();
      sqlite.close();
    }
  });
});
