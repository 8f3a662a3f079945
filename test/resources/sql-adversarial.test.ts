import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  BudgetExhausted,
  CapabilityDenied,
  createManualClock,
  createMint,
  Expired,
  forSeconds,
  InvalidInput,
  LimitExceeded,
  NotACapability,
  readOnly,
  restrict,
  revocable,
  Revoked,
  singleUse,
  type Capability,
} from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { CreateQuery, DeleteQuery, ReadQuery, UpdateQuery } from "../../src/resources/sql/query.ts";
import { capabilities, ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * Bypass attempts against the confined database, on both engines. Each must
 * fail with its typed error, before any SQL runs: the driver-level counter
 * stays at zero and every table is unchanged.
 */

function world() {
  const clock = createManualClock(0);
  const caps = capabilities(clock);
  const other = (scope: Record<string, string | number>) =>
    createMint({ issuer: "misconfigured", clock, policy: () => ({ db: [{ model: "Customer", ops: ["read"], scope }] }) }).issue({ id: "m" });
  const revoked = revocable(caps.agent);
  revoked.revoke("the task was cancelled");
  return {
    ...caps,
    clock,
    revoked: revoked.capability,
    shortLived: forSeconds(caps.agent, 60),
    onlyTenant42: restrict(caps.agent, { tenants: ["t42"] }),
    once: singleUse(caps.agent),
    readOnly: readOnly(caps.agent),
    stringScope: other({ tenantId: "42" }),
    unknownScope: other({ region: "eu" }),
  };
}
type World = ReturnType<typeof world>;

/** Untyped entry points: the attempts send what a model might, not what the types allow. `sync`: reads go through readSync. */
const api = (db: SqlDatabase, sync = false) => ({
  read: (cap: Capability, q: unknown) =>
    sync
      ? new Promise((resolve) => {
          resolve(db.readSync(cap as DbCapability<"read">, q as ReadQuery));
        })
      : db.read(cap as DbCapability<"read">, q as ReadQuery),
  create: (cap: Capability, q: unknown) => db.create(cap as DbCapability<"create">, q as CreateQuery),
  update: (cap: Capability, q: unknown) => db.update(cap as DbCapability<"update">, q as UpdateQuery),
  delete: (cap: Capability, q: unknown) => db.delete(cap as DbCapability<"delete">, q as DeleteQuery),
});
type Api = ReturnType<typeof api>;

interface Attempt {
  readonly name: string;
  /** Runs before the counters are cleared: for attempts that need a first, allowed call. */
  readonly before?: (db: Api, w: World) => Promise<unknown>;
  readonly run: (db: Api, w: World) => Promise<unknown>;
  readonly error: abstract new (...args: never[]) => Error;
  readonly message: RegExp;
}

const C = "Customer";

const ATTEMPTS: readonly Attempt[] = [
  // Identifiers: only the schema's names reach SQL.
  { name: "unknown model", run: (db, w) => db.read(w.agent, { model: "Users" }), error: InvalidInput, message: /unknown model "Users"/ },
  { name: "SQL in the model name", run: (db, w) => db.read(w.agent, { model: "Customer; DROP TABLE customers;--" }), error: InvalidInput, message: /unknown model "Customer; DROP TABLE customers;--"/ },
  { name: "model named __proto__", run: (db, w) => db.read(w.agent, JSON.parse('{"model":"__proto__"}')), error: InvalidInput, message: /unknown model "__proto__"/ },
  { name: "model named after an inherited key", run: (db, w) => db.read(w.agent, { model: "toString" }), error: InvalidInput, message: /unknown model "toString"/ },
  { name: "table name instead of model name", run: (db, w) => db.read(w.agent, { model: "customers" }), error: InvalidInput, message: /unknown model "customers"/ },
  { name: "unknown field", run: (db, w) => db.read(w.agent, { model: C, fields: ["id", "password"] }), error: InvalidInput, message: /fields\.1: Customer has no field "password"/ },
  { name: "column name instead of field name", run: (db, w) => db.read(w.agent, { model: C, fields: ["tenant_id"] }), error: InvalidInput, message: /no field "tenant_id"/ },
  { name: "SQL in a field name", run: (db, w) => db.read(w.agent, { model: C, fields: ['name" FROM customers --'] }), error: InvalidInput, message: /no field "name\\" FROM customers --"/ },
  { name: "star as a field", run: (db, w) => db.read(w.agent, { model: C, fields: ["*"] }), error: InvalidInput, message: /no field "\*"/ },
  { name: "SQL as a filter key", run: (db, w) => db.read(w.agent, { model: C, where: { "1=1 OR tenant_id": 43 } }), error: InvalidInput, message: /where: Customer has no field "1=1 OR tenant_id"/ },
  { name: "__proto__ as a filter key", run: (db, w) => db.read(w.agent, { model: C, where: JSON.parse('{"__proto__":{"tenantId":43}}') as unknown }), error: InvalidInput, message: /no field "__proto__"/ },
  { name: "SQL as a filter operator", run: (db, w) => db.read(w.agent, { model: C, where: { name: { "= 'x' OR 1=1 --": 1 } } }), error: InvalidInput, message: /unknown filter operator "= 'x' OR 1=1 --"/ },
  { name: "SQL in the order direction", run: (db, w) => db.read(w.agent, { model: C, orderBy: [{ field: "id", direction: "desc; DROP TABLE customers" }] }), error: InvalidInput, message: /direction must be "asc" or "desc"/ },
  { name: "order by an unknown field", run: (db, w) => db.read(w.agent, { model: C, orderBy: [{ field: "random()" }] }), error: InvalidInput, message: /orderBy\.0\.field: Customer has no field "random\(\)"/ },
  { name: "raw SQL smuggled as an extra key", run: (db, w) => db.read(w.agent, { model: C, sql: "SELECT * FROM customers" }), error: InvalidInput, message: /query\.sql is not part of a query/ },
  { name: "a query that is SQL text", run: (db, w) => db.read(w.agent, "SELECT * FROM customers"), error: InvalidInput, message: /query must be an object/ },

  // Values: typed by the schema, always bound.
  { name: "SQL as an integer value", run: (db, w) => db.read(w.agent, { model: C, where: { id: "1 OR 1=1" } }), error: InvalidInput, message: /id must be an integer, got "1 OR 1=1"/ },
  { name: "an object as a value", run: (db, w) => db.create(w.agent, { model: C, values: { name: { toString: "x" }, vip: false } }), error: InvalidInput, message: /values\.name: name must be a string/ },
  { name: "a bare list as a filter", run: (db, w) => db.read(w.agent, { model: C, where: { id: [1, 4] } }), error: InvalidInput, message: /needs an operator/ },
  { name: "an oversized in-list", run: (db, w) => db.read(w.agent, { model: C, where: { id: { in: Array.from({ length: 101 }, (_, i) => i) } } }), error: InvalidInput, message: /lists 101 items; at most 100/ },
  { name: "NaN as a value", run: (db, w) => db.read(w.agent, { model: C, where: { id: Number.NaN } }), error: InvalidInput, message: /id must be an integer, got NaN/ },
  { name: "null in a required field", run: (db, w) => db.create(w.agent, { model: C, values: { name: null, vip: false } }), error: InvalidInput, message: /name cannot be null/ },
  { name: "text search on a number field", run: (db, w) => db.read(w.agent, { model: C, where: { id: { contains: "1" } } }), error: InvalidInput, message: /id is not a text field/ },

  // Fields the grant does not name.
  { name: "select a hidden field", run: (db, w) => db.read(w.agent, { model: C, fields: ["name", "secretNote"] }), error: CapabilityDenied, message: /does not grant field Customer\.secretNote/ },
  { name: "filter on a hidden field", run: (db, w) => db.read(w.agent, { model: C, fields: ["id"], where: { secretNote: { contains: "money" } } }), error: CapabilityDenied, message: /does not grant field Customer\.secretNote/ },
  { name: "order by a hidden field", run: (db, w) => db.read(w.agent, { model: C, fields: ["id"], orderBy: [{ field: "secretNote" }] }), error: CapabilityDenied, message: /does not grant field Customer\.secretNote/ },
  { name: "write a hidden field", run: (db, w) => db.update(w.agent, { model: C, set: { secretNote: "x" }, where: { id: 1 } }), error: CapabilityDenied, message: /does not grant field Customer\.secretNote/ },
  { name: "return a hidden field from a create", run: (db, w) => db.create(w.agent, { model: C, values: { name: "Z", vip: false }, returning: ["secretNote"] }), error: CapabilityDenied, message: /does not grant field Customer\.secretNote/ },
  { name: "delete by a hidden field", run: (db, w) => db.delete(w.agent, { model: C, where: { secretNote: null } }), error: CapabilityDenied, message: /does not grant field Customer\.secretNote/ },

  // Rows outside the scope.
  { name: "read another tenant's rows", run: (db, w) => db.read(w.agent, { model: C, where: { tenantId: 43 } }), error: CapabilityDenied, message: /confines Customer to rows where tenantId = 42/ },
  { name: "read another tenant's rows with eq", run: (db, w) => db.read(w.agent, { model: C, where: { tenantId: { eq: 43 } } }), error: CapabilityDenied, message: /tenantId = 42/ },
  { name: "read rows with no tenant", run: (db, w) => db.read(w.agent, { model: C, where: { tenantId: null } }), error: CapabilityDenied, message: /tenantId = 42/ },
  { name: "one customer's capability reading another customer", run: (db, w) => db.read(w.customer7, { model: C, where: { id: 8 } }), error: CapabilityDenied, message: /confines Customer to rows where id = 7/ },
  { name: "one customer's capability reading another model", run: (db, w) => db.read(w.customer7, { model: "Order" }), error: CapabilityDenied, message: /does not grant read on model Order/ },
  { name: "one customer's capability updating another customer", run: (db, w) => db.update(w.customer7, { model: C, set: { name: "x" }, where: { id: 4 } }), error: CapabilityDenied, message: /id = 7/ },
  { name: "update that moves a row to another tenant", run: (db, w) => db.update(w.agent, { model: C, set: { tenantId: 43 }, where: { id: 1 } }), error: CapabilityDenied, message: /tenantId = 42/ },
  { name: "update that changes the customer's id", run: (db, w) => db.update(w.customer7, { model: C, set: { id: 8 } }), error: CapabilityDenied, message: /id = 7/ },
  { name: "create in another tenant", run: (db, w) => db.create(w.agent, { model: C, values: { tenantId: 43, name: "Mallory", vip: false } }), error: CapabilityDenied, message: /tenantId = 42/ },
  { name: "create an order in another tenant", run: (db, w) => db.create(w.agent, { model: "Order", values: { tenantId: 43, customerId: 4, total: 1, status: "open" } }), error: CapabilityDenied, message: /confines Order to rows where tenantId = 42/ },
  // Database-assigned keys: choosing one would tell, by the unique-key error, which ids other tenants hold
  { name: "create giving a generated key held by another tenant", run: (db, w) => db.create(w.agent, { model: "Order", values: { id: 12, customerId: 1, total: 1, status: "open" } }), error: InvalidInput, message: /values\.id: Order\.id is assigned by the database/ },
  { name: "create giving a generated key no row holds", run: (db, w) => db.create(w.agent, { model: "Order", values: { id: 99, customerId: 1, total: 1, status: "open" } }), error: InvalidInput, message: /values\.id: Order\.id is assigned by the database/ },
  { name: "update setting a generated key", run: (db, w) => db.update(w.agent, { model: "Order", set: { id: 12 }, where: { id: 10 } }), error: InvalidInput, message: /set\.id: Order\.id is assigned by the database/ },
  { name: "one customer's capability creating another customer", run: (db, w) => db.create(w.customer7, { model: C, values: { id: 8, name: "Mallory", vip: false } }), error: CapabilityDenied, message: /id = 7/ },
  { name: "delete another tenant's rows", run: (db, w) => db.delete(w.agent, { model: C, where: { tenantId: 43 } }), error: CapabilityDenied, message: /tenantId = 42/ },
  { name: "an operation the grant does not name", run: (db, w) => db.delete(w.agent, { model: "Order", where: { id: 12 } }), error: CapabilityDenied, message: /does not grant delete on model Order/ },
  { name: "a write through a read-only narrowing", run: (db, w) => db.update(w.readOnly, { model: C, set: { name: "x" } }), error: CapabilityDenied, message: /does not grant update on model Customer/ },

  // Limits.
  { name: "a huge limit", run: (db, w) => db.read(w.agent, { model: C, limit: 1e9 }), error: LimitExceeded, message: /limit 1000000000 is above the 5 rows/ },
  { name: "a negative limit", run: (db, w) => db.read(w.agent, { model: C, limit: -1 }), error: InvalidInput, message: /limit must be a whole number/ },
  { name: "a fractional limit", run: (db, w) => db.read(w.agent, { model: C, limit: 1.5 }), error: InvalidInput, message: /limit must be a whole number/ },
  { name: "SQL as the limit", run: (db, w) => db.read(w.agent, { model: C, limit: "10; DROP TABLE customers" }), error: InvalidInput, message: /limit must be a whole number, zero or more, got "10; DROP TABLE customers"/ },
  { name: "a zero limit", run: (db, w) => db.read(w.agent, { model: C, limit: 0 }), error: InvalidInput, message: /limit must be at least 1/ },
  { name: "a negative offset", run: (db, w) => db.read(w.agent, { model: C, limit: 1, offset: -5 }), error: InvalidInput, message: /offset must be a whole number/ },

  // The authority itself.
  { name: "a look-alike capability", run: (db, w) => db.read({ id: w.agent.id, lineage: w.agent.lineage } as never, { model: C }), error: NotACapability, message: /capability issued by this kernel/ },
  { name: "a structured clone of a capability", run: (db, w) => db.read(structuredClone(w.agent), { model: C }), error: NotACapability, message: /capability issued by this kernel/ },
  { name: "a revoked capability", run: (db, w) => db.read(w.revoked, { model: C }), error: Revoked, message: /the task was cancelled/ },
  {
    name: "an expired capability",
    run: (db, w) => {
      w.clock.advance(61_000);
      return db.read(w.shortLived, { model: C });
    },
    error: Expired,
    message: /expired/,
  },
  { name: "a tenant-confined capability used without a tenant", run: (db, w) => db.read(w.onlyTenant42, { model: C }), error: CapabilityDenied, message: /confined to tenants t42/ },
  { name: "a tenant-confined capability used for another tenant", run: (db, w) => db.read(w.onlyTenant42, { model: C, tenant: "t43" }), error: CapabilityDenied, message: /not t43/ },
  { name: "a grant scope of the wrong type", run: (db, w) => db.read(w.stringScope, { model: C }), error: CapabilityDenied, message: /tenantId = "42", which cannot be enforced: tenantId must be an integer/ },
  { name: "a grant scope on a field the schema lacks", run: (db, w) => db.read(w.unknownScope, { model: C }), error: CapabilityDenied, message: /Customer has no field region/ },
  {
    name: "a single-use capability used twice",
    before: (db, w) => db.read(w.once, { model: C, fields: ["id"], limit: 1 }),
    run: (db, w) => db.read(w.once, { model: C, fields: ["id"], limit: 1 }),
    error: BudgetExhausted,
    message: /single-use and has been used/,
  },
];

describe.each(ENGINES)("SQL bypass attempts on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "each is refused with its typed error, and runs no SQL", () => {
    let h: Harness;
    let db: Api;
    let syncDb: Api;

    beforeAll(async () => {
      h = await engine.open();
      await h.reset();
      const resource = createSqlDatabase({ schema: SCHEMA, ...h.connection, limits: { maxRows: 5 } });
      db = api(resource);
      syncDb = api(resource, true);
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(() => {
      h.clearCounts();
    });

    it("has at least 30 attempts", () => {
      expect(ATTEMPTS.length).toBeGreaterThanOrEqual(30);
    });

    it("gives the same unique-key error whether the row holding the value is in the caller's scope or another tenant's", async () => {
      const { agent } = world();
      const tell = (e: unknown) => (e instanceof InvalidInput ? { type: e.constructor.name, message: e.message, code: e.code } : e);
      const attempts = [
        // id 1 is tenant 42's (in scope), id 4 tenant 43's.
        [() => db.create(agent, { model: C, values: { id: 1, name: "Twin", vip: false } }), () => db.create(agent, { model: C, values: { id: 4, name: "Twin", vip: false } })],
        // ada@ is tenant 42's, dan@ tenant 43's.
        [() => db.update(agent, { model: C, set: { email: "ada@example.com" }, where: { id: 2 } }), () => db.update(agent, { model: C, set: { email: "dan@example.com" }, where: { id: 2 } })],
        [() => db.update(agent, { model: C, set: { id: 1 }, where: { id: 2 } }), () => db.update(agent, { model: C, set: { id: 4 }, where: { id: 2 } })],
      ] as const;
      for (const [inScope, elsewhere] of attempts) {
        const [mine, theirs] = [tell(await inScope().catch((e: unknown) => e)), tell(await elsewhere().catch((e: unknown) => e))];
        expect(mine).toMatchObject({ type: "InvalidInput", message: "the database refused the values given: another row already has that value of a unique field" });
        expect(theirs).toEqual(mine);
      }
    });

    const refused = async (through: Api, attempt: Attempt) => {
      const w = world();
      const tables = async () => [await h.rows("customers"), await h.rows("orders"), await h.rows("tasks")];
      const before = await tables();
      await attempt.before?.(through, w);
      h.clearCounts();
      const err = await attempt.run(through, w).then(
        () => null,
        (e: unknown) => e,
      );
      expect(h.executed()).toBe(0);
      expect(err).toBeInstanceOf(attempt.error);
      expect((err as Error).message).toMatch(attempt.message);
      expect(await tables()).toEqual(before);
    };

    it.each(ATTEMPTS)("$name", (attempt) => refused(db, attempt));

    // SQLite reads also run synchronously (Postgres has no readSync); every attempt is refused the same way through it.
    if (engine.name === "sqlite") it.each(ATTEMPTS)("$name, reads through readSync", (attempt) => refused(syncDb, attempt));

    it("property: a denied call runs no SQL, and no call changes a row outside the grant", async () => {
      const w = world();
      const caps = [w.agent, w.customer7, w.readOnly, w.onlyTenant42] as const;
      const tenants = fc.constantFrom(42, 43);
      const ids = fc.constantFrom(1, 2, 4, 7, 10, 12, 99);
      const fields = fc.subarray(["id", "tenantId", "name", "email", "vip", "secretNote"], { minLength: 1 });
      const where = fc.record({ id: ids, tenantId: tenants }, { requiredKeys: [] });
      const values = fc.record(
        { id: ids, tenantId: tenants, name: fc.constantFrom("N"), email: fc.constantFrom("ada@example.com", "dan@example.com", "new@example.com"), vip: fc.boolean(), secretNote: fc.constantFrom("s") },
        { requiredKeys: ["name", "vip"] },
      );
      const call = fc.oneof(
        fc.record({ op: fc.constant("read" as const), model: fc.constantFrom(C, "Order", "Task"), fields, where }),
        fc.record({ op: fc.constant("create" as const), model: fc.constant(C), values }),
        fc.record({ op: fc.constant("update" as const), model: fc.constantFrom(C, "Order"), set: values, where }),
        fc.record({ op: fc.constant("delete" as const), model: fc.constantFrom(C, "Order"), where }),
      );
      const outsideGrant = async () => [(await h.rows("customers")).filter((r) => r.tenant_id !== 42), (await h.rows("orders")).filter((r) => r.tenant_id !== 42), await h.rows("tasks")];
      const untouched = await outsideGrant();
      let denials = 0;
      await fc.assert(
        fc.asyncProperty(call, fc.constantFrom(...caps.keys()), async (q, which) => {
          const cap = caps[which] as Capability;
          h.clearCounts();
          const { op, ...query } = q;
          const outcome = await db[op](cap, { ...query, ...(which === 3 ? { tenant: "t42" } : {}) }).then(
            () => null,
            (e: unknown) => e,
          );
          if ([CapabilityDenied, BudgetExhausted, Expired, Revoked].some((type) => outcome instanceof type)) {
            denials += 1;
            expect(h.executed()).toBe(0);
          }
          expect(await outsideGrant()).toEqual(untouched);
        }),
        { numRuns: 150 },
      );
      expect(denials).toBeGreaterThan(20);
      await h.reset();
    });
  });
});
