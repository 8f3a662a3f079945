import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AuditFailure, CapabilityDenied, InvalidInput, revocable, Revoked } from "../../src/index.ts";
import type { AuditCompletion, AuditEvent, AuditIntent, AuditSink } from "../../src/kernel/audit-sink.ts";
import { createSqlDatabase } from "../../src/resources/sql/database.ts";
import type { ReadQuery } from "../../src/resources/sql/query.ts";
import { memorySink } from "../tools/memory-sink.ts";
import { capabilities, ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * readSync: a SQLite read with no promise made. It must decide, limit and
 * record exactly as read does (the bypass attempts run through it too, in
 * sql-adversarial.test.ts), and refuse what it cannot do synchronously.
 */

const sqlite = ENGINES.find((e) => e.name === "sqlite");
if (sqlite === undefined) throw new Error("the SQLite fixture is missing");

/** A synchronous sink keeping what it is given, in the order given; `returnPromise` makes it break its word. */
function syncSink(returnPromise: "intend" | "complete" | "write" | null = null) {
  const calls: { method: string; id: string }[] = [];
  const answer = (method: string): Promise<void> | undefined => (method === returnPromise ? Promise.resolve() : undefined);
  const sink: AuditSink = {
    synchronous: true,
    intend: (i: AuditIntent) => {
      calls.push({ method: "intend", id: i.id });
      return answer("intend");
    },
    complete: (c: AuditCompletion) => {
      calls.push({ method: "complete", id: c.id });
      return answer("complete");
    },
    write: (e: AuditEvent) => {
      calls.push({ method: "write", id: e.id });
      return answer("write");
    },
  };
  return { sink, calls };
}

const QUERIES: readonly ReadQuery[] = [
  { model: "Customer", orderBy: [{ field: "id" }] },
  { model: "Customer", fields: ["name", "id"], where: { id: 2 } },
  { model: "Customer", fields: ["id"], where: { id: { in: [1, 3, 4] }, vip: false }, orderBy: [{ field: "id", direction: "desc" }], limit: 2, offset: 0 },
  { model: "Order", where: { status: "open" } },
];

describe("readSync on SQLite", () => {
  let h: Harness;
  const { agent, customer7 } = capabilities();

  beforeAll(async () => {
    h = await sqlite.open();
  });
  afterAll(async () => {
    await h.close();
  });
  beforeEach(async () => {
    await h.reset();
  });

  it("returns what read returns, for the same queries and capabilities", async () => {
    const db = createSqlDatabase({ schema: SCHEMA, ...h.connection, limits: { maxRows: 5 } });
    for (const cap of [agent, customer7]) {
      for (const query of QUERIES) {
        const [asyncly, syncly] = [await db.read(cap, query).catch((e: unknown) => e), (() => { try { return db.readSync(cap, query); } catch (e) { return e; } })()];
        expect(syncly).toEqual(asyncly);
      }
    }
  });

  it("refuses an asynchronous audit sink before deciding anything", () => {
    const sink = memorySink();
    const db = createSqlDatabase({ schema: SCHEMA, ...h.connection, audit: sink });
    h.clearCounts();
    expect(() => db.readSync(agent, { model: "Customer" })).toThrow(InvalidInput);
    expect(() => db.readSync(agent, { model: "Customer" })).toThrow(/audit sink is asynchronous/);
    expect(h.executed()).toBe(0);
    expect(sink.events).toEqual([]);
  });

  it("records an allowed read as an intent before the statement and its completion after; a denied one as one event", () => {
    const { sink, calls } = syncSink();
    const db = createSqlDatabase({ schema: SCHEMA, ...h.connection, audit: sink });
    expect(db.readSync(agent, { model: "Customer", fields: ["id"], where: { id: 1 } })).toEqual([{ id: 1 }]);
    expect(calls.map((c) => c.method)).toEqual(["intend", "complete"]);
    expect(calls[0]?.id).toBe(calls[1]?.id);
    calls.length = 0;
    h.clearCounts();
    expect(() => db.readSync(agent, { model: "Customer", where: { tenantId: 43 } })).toThrow(CapabilityDenied);
    expect(calls.map((c) => c.method)).toEqual(["write"]);
    expect(h.executed()).toBe(0);
  });

  it("does not read when a synchronous sink returns a promise from intend, and withholds the rows when it does so from complete", () => {
    const early = syncSink("intend");
    const db = createSqlDatabase({ schema: SCHEMA, ...h.connection, audit: early.sink });
    h.clearCounts();
    expect(() => db.readSync(agent, { model: "Customer", fields: ["id"] })).toThrow(AuditFailure);
    expect(h.executed()).toBe(0);
    const late = syncSink("complete");
    const db2 = createSqlDatabase({ schema: SCHEMA, ...h.connection, audit: late.sink });
    expect(() => db2.readSync(agent, { model: "Customer", fields: ["id"] })).toThrow(/outcome could not be recorded, so its result is withheld/);
  });

  it("refuses a capability revoked after an earlier read, with the same plan cached", () => {
    const db = createSqlDatabase({ schema: SCHEMA, ...h.connection });
    const r = revocable(agent);
    expect(db.readSync(r.capability, { model: "Customer", fields: ["id"], where: { id: 1 } })).toEqual([{ id: 1 }]);
    r.revoke("done");
    h.clearCounts();
    expect(() => db.readSync(r.capability, { model: "Customer", fields: ["id"], where: { id: 1 } })).toThrow(Revoked);
    expect(h.executed()).toBe(0);
  });
});

describe("readSync on Postgres", () => {
  it("is refused: its statements run asynchronously", () => {
    // A pool that is never used: the refusal comes before any query.
    const pool = { query: () => Promise.reject(new Error("not used")), connect: () => Promise.reject(new Error("not used")) };
    const db = createSqlDatabase({ schema: SCHEMA, postgres: pool as never });
    expect(() => db.readSync(capabilities().agent, { model: "Customer" })).toThrow(/readSync needs a SQLite database/);
  });
});
