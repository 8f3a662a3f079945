import { createHmac } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  authorize,
  CapabilityDenied,
  createManualClock,
  createMint,
  InvalidInput,
  narrow,
  type Capability,
  type FieldAction,
  type Grant,
} from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { DeleteQuery, ReadQuery, UpdateQuery } from "../../src/resources/sql/query.ts";
import { REDACTED } from "../../src/resources/sql/views.ts";
import { memorySink } from "../tools/memory-sink.ts";
import { ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * Field actions: a grant shows each field whole, masked, hashed, redacted or
 * not at all; narrowing only moves a field towards deny; and a field the
 * capability does not show whole cannot be used to learn its values (no
 * filter, order, or write on it), on both engines.
 */

const KEY = Buffer.from("0123456789abcdef0123456789abcdef");
const hmac = (v: unknown) => createHmac("sha256", KEY).update(JSON.stringify(v)).digest("hex").slice(0, 32);
const C = "Customer";

const ACTIONS = {
  name: "hash",
  email: { mask: "{first2}***{last4}" },
  vip: "redact",
  secretNote: "deny",
} as const satisfies Record<string, FieldAction>;

function world(actions: Record<string, FieldAction> = ACTIONS) {
  const mint = createMint({
    issuer: "fields",
    clock: createManualClock(0),
    policy: () => ({ db: [{ model: C, ops: ["read", "update", "delete"], scope: { tenantId: 42 }, fieldActions: actions }] }),
  });
  return { agent: mint.issue({ id: "agent" }) };
}

const api = (db: SqlDatabase) => ({
  read: (cap: Capability, q: unknown) => db.read(cap as DbCapability<"read">, q as ReadQuery),
  update: (cap: Capability, q: unknown) => db.update(cap as DbCapability<"update">, q as UpdateQuery),
  delete: (cap: Capability, q: unknown) => db.delete(cap as DbCapability<"delete">, q as DeleteQuery),
});
type Api = ReturnType<typeof api>;

interface Probe {
  readonly name: string;
  readonly run: (db: Api, agent: Capability) => Promise<unknown>;
  readonly message: RegExp;
}

/** Ways to learn a hidden field's value, or another tenant's rows, through what the database answers. */
const PROBES: readonly Probe[] = [
  { name: "filter on a denied field", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { secretNote: "board member" } }), message: /does not grant field Customer\.secretNote/ },
  { name: "filter on a denied field with startsWith", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { secretNote: { startsWith: "b" } } }), message: /does not grant field Customer\.secretNote/ },
  { name: "filter on a denied field being null", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { secretNote: null } }), message: /does not grant field Customer\.secretNote/ },
  { name: "range filter on a denied field", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { secretNote: { gt: "m" } } }), message: /does not grant field Customer\.secretNote/ },
  { name: "order by a denied field", run: (db, a) => db.read(a, { model: C, fields: ["id"], orderBy: [{ field: "secretNote" }] }), message: /does not grant field Customer\.secretNote/ },
  { name: "select a denied field", run: (db, a) => db.read(a, { model: C, fields: ["id", "secretNote"] }), message: /does not grant field Customer\.secretNote/ },
  { name: "update a denied field", run: (db, a) => db.update(a, { model: C, set: { secretNote: "x" }, where: { id: 1 } }), message: /does not grant field Customer\.secretNote/ },
  { name: "return a denied field from an update", run: (db, a) => db.update(a, { model: C, set: { tenantId: 42 }, where: { id: 1 }, returning: ["secretNote"] }), message: /does not grant field Customer\.secretNote/ },
  { name: "delete filtered by a denied field", run: (db, a) => db.delete(a, { model: C, where: { secretNote: "owes us money" } }), message: /does not grant field Customer\.secretNote/ },
  { name: "filter on a masked field", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { email: "ada@example.com" } }), message: /grants Customer\.email only masked/ },
  { name: "startsWith on a masked field, character by character", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { email: { startsWith: "ad" } } }), message: /grants Customer\.email only masked/ },
  { name: "contains on a masked field", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { email: { contains: "@" } } }), message: /grants Customer\.email only masked/ },
  { name: "order by a masked field", run: (db, a) => db.read(a, { model: C, fields: ["id"], orderBy: [{ field: "email" }] }), message: /grants Customer\.email only masked/ },
  { name: "filter on a masked field it also returns", run: (db, a) => db.read(a, { model: C, fields: ["email"], where: { email: { ne: null } } }), message: /grants Customer\.email only masked/ },
  { name: "filter on a hashed field by its value", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { name: "Ada" } }), message: /grants Customer\.name only hashed/ },
  { name: "filter on a hashed field by its hash", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { name: hmac("Ada") } }), message: /grants Customer\.name only hashed/ },
  { name: "range filter on a hashed field (binary search)", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { name: { lt: "M" } } }), message: /grants Customer\.name only hashed/ },
  { name: "order by a hashed field", run: (db, a) => db.read(a, { model: C, fields: ["id"], orderBy: [{ field: "name", direction: "desc" }] }), message: /grants Customer\.name only hashed/ },
  { name: "filter on a redacted field", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { vip: true } }), message: /grants Customer\.vip only redacted/ },
  { name: "order by a redacted field", run: (db, a) => db.read(a, { model: C, fields: ["id"], orderBy: [{ field: "vip" }] }), message: /grants Customer\.vip only redacted/ },
  { name: "update filtered by a masked field (changes only matching rows)", run: (db, a) => db.update(a, { model: C, set: { tenantId: 42 }, where: { email: "ada@example.com" } }), message: /grants Customer\.email only masked/ },
  { name: "delete filtered by a hashed field (counts matching rows)", run: (db, a) => db.delete(a, { model: C, where: { name: "Ada" } }), message: /grants Customer\.name only hashed/ },
  { name: "write a masked field", run: (db, a) => db.update(a, { model: C, set: { email: "x@example.com" }, where: { id: 1 } }), message: /grants Customer\.email only masked/ },
  { name: "return a masked field whole from an update", run: (db, a) => db.update(a, { model: C, set: { tenantId: 42 }, where: { id: 1 }, returning: ["email"] }), message: /grants Customer\.email only masked/ },
  { name: "another tenant's rows, filtered by a masked field", run: (db, a) => db.read(a, { model: C, fields: ["id"], where: { tenantId: 43, email: "dan@example.com" } }), message: /grants Customer\.email only masked|confines Customer to rows where tenantId = 42/ },
];

describe.each(ENGINES)("field actions on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "fields are shown as the whole chain allows, and hidden ones cannot be probed", () => {
    let h: Harness;
    let db: Api;

    beforeAll(async () => {
      h = await engine.open();
      await h.reset();
      db = api(createSqlDatabase({ schema: SCHEMA, ...h.connection, hashKey: KEY }));
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(() => {
      h.clearCounts();
    });

    it("shows each field as the grant says: hashed, masked, redacted, or not at all", async () => {
      const { agent } = world();
      const rows = await db.read(agent, { model: C, where: { id: { in: [1, 2] } }, orderBy: [{ field: "id" }] });
      expect(rows).toEqual([
        { id: 1, tenantId: 42, name: hmac("Ada"), email: "ad***.com", vip: REDACTED },
        { id: 2, tenantId: 42, name: hmac("Bob"), email: null, vip: REDACTED },
      ]);
    });

    it("hashes equal values equally, so they can still be matched, and tells 1 from \"1\"", async () => {
      const { agent } = world({ name: "hash", id: "hash" });
      const rows = await db.read(agent, { model: C, fields: ["id", "name"], where: { tenantId: 42 }, limit: 2 });
      for (const row of rows) expect(row.name).toMatch(/^[0-9a-f]{32}$/);
      expect(hmac(1)).not.toBe(hmac("1"));
      expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
    });

    it("shows a value too short for its mask as asterisks only", async () => {
      const { agent } = world({ name: { mask: "{first2}…{last2}" } });
      // "Ada" and "Grace" have fewer than 8 characters, twice the 4 the mask would show; "Cyd 100%" has 8.
      const rows = await db.read(agent, { model: C, fields: ["name"], where: { id: { in: [1, 3, 7] } }, orderBy: [{ field: "id" }] });
      expect(rows).toEqual([{ name: "**…**" }, { name: "Cy…0%" }, { name: "**…**" }]);
    });

    it("a narrower link can only move a field towards deny", async () => {
      const { agent } = world();
      const wider = narrow(agent, { db: [{ model: C, ops: ["read"], fieldActions: { name: "allow", email: "allow", vip: "allow", secretNote: "allow" } }] });
      expect(await db.read(wider, { model: C, where: { id: 1 } })).toEqual([{ id: 1, tenantId: 42, name: hmac("Ada"), email: "ad***.com", vip: REDACTED }]);
      // A different mask and a hash each reveal what the other hides: where links disagree, only the placeholder is left.
      const disagree = narrow(agent, { db: [{ model: C, ops: ["read"], fieldActions: { email: "hash", name: { mask: "{first1}" } } }] });
      expect(await db.read(disagree, { model: C, fields: ["name", "email"], where: { id: 1 } })).toEqual([{ name: REDACTED, email: REDACTED }]);
      const denied = narrow(agent, { db: [{ model: C, ops: ["read"], fieldActions: { email: "deny", tenantId: "redact" } }] });
      expect(await db.read(denied, { model: C, where: { id: 1 } })).toEqual([{ id: 1, tenantId: REDACTED, name: hmac("Ada"), vip: REDACTED }]);
    });

    it("the kernel refuses a request that shows a field more than a link allows, whoever builds it", () => {
      const { agent } = world();
      const ask = (fields: string[], views?: Record<string, unknown>) =>
        authorize(agent, { action: "db.read", model: C, fields, scope: { tenantId: 42 }, ...(views === undefined ? {} : { views }) } as never);
      const denial = (fields: string[], views?: Record<string, unknown>) => {
        const d = ask(fields, views);
        return d.allowed ? "allowed" : d.reason;
      };
      expect(denial(["id"], { email: { mask: "{first2}***{last4}" } })).toBe("allowed");
      expect(denial(["id"], { email: "redact", name: "redact", vip: "redact" })).toBe("allowed");
      expect(denial(["email"])).toMatch(/only masked/);
      expect(denial(["id"], { email: { mask: "{first9}" } })).toMatch(/only masked as .* not masked as/);
      expect(denial(["id"], { email: "hash" })).toMatch(/only masked as .* not hashed/);
      expect(denial(["id"], { name: { mask: "{last1}" } })).toMatch(/only hashed/);
      expect(denial(["id"], { secretNote: "redact" })).toMatch(/does not grant field Customer\.secretNote/);
    });

    it("the audit event of a masked read names the fields and their views, and holds none of their values", async () => {
      const sink = memorySink();
      const audited = createSqlDatabase({ schema: SCHEMA, ...h.connection, hashKey: KEY, audit: sink });
      const { agent } = world();
      await audited.read(agent, { model: C, where: { id: { in: [1, 7] } } });
      await audited.read(agent as DbCapability<"read">, { model: C, fields: ["id"], where: { email: "ada@example.com" } }).catch(() => null);
      const recorded = JSON.stringify(sink.events);
      expect(sink.events.map((e) => e.request)).toMatchObject([
        { action: "db.read", views: { name: "hash", email: { mask: "{first2}***{last4}" }, vip: "redact" } },
        { action: "db.read", fields: ["id", "email"] },
      ]);
      for (const hidden of ["owes us money", "board member", "ada@example.com", "grace@example.com", "Ada", "Grace"]) expect(recorded).not.toContain(hidden);
    });

    it("refuses a hash key that is too short", () => {
      expect(() => createSqlDatabase({ schema: SCHEMA, ...h.connection, hashKey: Buffer.alloc(8) })).toThrow(InvalidInput);
    });

    it("has at least 25 probes", () => {
      expect(PROBES.length).toBeGreaterThanOrEqual(25);
    });

    it.each(PROBES)("probe: $name is denied and runs no SQL", async (probe) => {
      const { agent } = world();
      const before = await h.rows("customers");
      h.clearCounts();
      const err = await probe.run(db, agent).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CapabilityDenied);
      expect((err as Error).message).toMatch(probe.message);
      expect(h.executed()).toBe(0);
      expect(await h.rows("customers")).toEqual(before);
    });

    it("property: whatever the chain, no result holds a field some link denies, nor the whole value of one some link hides", async () => {
      const raw = new Map((await h.rows("customers")).map((r) => [r.id as number, r]));
      const column: Record<string, string> = { tenantId: "tenant_id", secretNote: "secret_note" };
      const names = ["id", "tenantId", "name", "email", "vip", "secretNote"];
      const action = fc.constantFrom<FieldAction>("allow", "hash", "redact", "deny", { mask: "{last3}" }, { mask: "#{first1}" });
      const rule = fc.record(
        { fields: fc.subarray(names, { minLength: 1 }), fieldActions: fc.dictionary(fc.constantFrom(...names), action, { maxKeys: 4 }) },
        { requiredKeys: ["fieldActions"] },
      );
      await fc.assert(
        fc.asyncProperty(fc.array(rule, { minLength: 1, maxLength: 3 }), fc.option(fc.subarray(names, { minLength: 1 }), { nil: undefined }), async (links, fields) => {
          const { agent } = world({});
          let cap: Capability = agent;
          for (const l of links) cap = narrow(cap, { db: [{ model: C, ops: ["read"], ...l }] } satisfies Grant);
          const shown = (f: string) => links.every((l) => (l.fields === undefined || l.fields.includes(f)) && l.fieldActions[f] !== "deny");
          const whole = (f: string) => links.every((l) => (l.fieldActions[f] ?? "allow") === "allow");
          const rows = await db.read(cap, { model: C, ...(fields === undefined ? {} : { fields }), orderBy: [] }).catch((e: unknown) => {
            expect(e).toBeInstanceOf(CapabilityDenied);
            return [];
          });
          for (const row of rows) {
            for (const f of Object.keys(row)) expect(shown(f)).toBe(true);
          }
          // Match rows back to the table by a field shown whole when there is one.
          if (rows.length > 0 && whole("id") && shown("id") && (fields === undefined || fields.includes("id"))) {
            for (const row of rows) {
              const original = raw.get(row.id as number) as Record<string, unknown>;
              for (const [f, v] of Object.entries(row)) {
                const before = original[column[f] ?? f];
                if (!whole(f) && before !== null) expect(v).not.toEqual(before);
              }
            }
          }
        }),
        { numRuns: 60 },
      );
    });
  });
});
