import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createManualClock, createMint, InvalidInput, narrow, NotACapability, type Capability } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type PageQuery, type SqlDatabase } from "../../src/resources/sql/database.ts";
import { AGENT_GRANT, ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * Signed pagination cursors: a cursor moves to the next page of the same
 * query for the same capability, and nothing else. Edited bytes, a cursor
 * made for another query or capability, or by another database's key, are
 * refused before any SQL; pages still obey the capability. On both engines.
 */

const QUERY: PageQuery = { model: "Customer", fields: ["id", "name"], orderBy: [{ field: "id" }], limit: 2 };
const REFUSED = /the cursor is not one this database issued for this query and capability/;

describe.each(ENGINES)("pagination cursors on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "signed, bound to the capability and the query", () => {
    let h: Harness;
    let db: SqlDatabase;
    let agent: Capability;
    const page = (cap: Capability, q: unknown) => db.page(cap as DbCapability<"read">, q as PageQuery);

    beforeAll(async () => {
      h = await engine.open();
      await h.reset();
      db = createSqlDatabase({ schema: SCHEMA, ...h.connection, cursorKey: Buffer.alloc(32, 7) });
      agent = createMint({ issuer: "cursors", clock: createManualClock(0), policy: () => AGENT_GRANT }).issue({ id: "agent" });
    });
    afterAll(async () => {
      await h.close();
    });

    it("walks the pages of the rows in scope and stops after a short page", async () => {
      const first = await page(agent, QUERY);
      expect(first.rows.map((r) => r.id)).toEqual([1, 2]);
      const second = await page(agent, { ...QUERY, cursor: first.next });
      expect(second.rows.map((r) => r.id)).toEqual([3, 7]);
      const third = await page(agent, { ...QUERY, cursor: second.next });
      // Tenant 42 has four customers: the third page is empty and has no next.
      expect(third).toEqual({ rows: [], next: null });
      // A database holding the same key accepts the cursor (a restart with a stable cursorKey).
      const again = createSqlDatabase({ schema: SCHEMA, ...h.connection, cursorKey: Buffer.alloc(32, 7) });
      expect((await again.page(agent as DbCapability<"read">, { ...QUERY, cursor: first.next as string })).rows.map((r) => r.id)).toEqual([3, 7]);
    });

    it("refuses a cursor moved to another capability, another query, or another database's key, and running no SQL", async () => {
      const { next } = await page(agent, QUERY);
      const child = narrow(agent, { db: [{ model: "Customer", ops: ["read"], scope: { tenantId: 42 } }] });
      const stranger = createSqlDatabase({ schema: SCHEMA, ...h.connection });
      h.clearCounts();
      await expect(page(child, { ...QUERY, cursor: next })).rejects.toThrow(REFUSED);
      await expect(page(agent, { ...QUERY, where: { vip: true }, cursor: next })).rejects.toThrow(REFUSED);
      await expect(page(agent, { ...QUERY, fields: ["id", "email"], cursor: next })).rejects.toThrow(REFUSED);
      await expect(page(agent, { ...QUERY, limit: 3, cursor: next })).rejects.toThrow(REFUSED);
      await expect(page(agent, { ...QUERY, orderBy: [{ field: "name" }], cursor: next })).rejects.toThrow(REFUSED);
      await expect(page(agent, { ...QUERY, tenant: "t", cursor: next })).rejects.toThrow(REFUSED);
      await expect(stranger.page(agent as DbCapability<"read">, { ...QUERY, cursor: next as string })).rejects.toThrow(REFUSED);
      expect(h.executed()).toBe(0);
    });

    it("refuses a cursor whose content was rewritten to start elsewhere, whatever signature it carries", async () => {
      const { next } = await page(agent, QUERY);
      const [body, signature] = (next as string).split(".") as [string, string];
      const content = JSON.parse(Buffer.from(body, "base64url").toString()) as Record<string, unknown>;
      const forged = (change: Record<string, unknown>) => `${Buffer.from(JSON.stringify({ ...content, ...change })).toString("base64url")}.${signature}`;
      h.clearCounts();
      await expect(page(agent, { ...QUERY, cursor: forged({ offset: 0 }) })).rejects.toThrow(REFUSED);
      await expect(page(agent, { ...QUERY, cursor: forged({ offset: -3 }) })).rejects.toThrow(REFUSED);
      await expect(page(agent, { ...QUERY, cursor: `${body}.` })).rejects.toThrow(REFUSED);
      await expect(page(agent, { ...QUERY, cursor: `${body}.${signature}.x` })).rejects.toThrow(REFUSED);
      await expect(page(agent, { ...QUERY, cursor: 2 })).rejects.toThrow(InvalidInput);
      await expect(page(agent, { ...QUERY, offset: 2 })).rejects.toThrow(/pages move by their cursor/);
      await expect(page(agent, { model: "Customer", fields: ["id"] })).rejects.toThrow(/query.limit is required/);
      await expect(page({ id: agent.id } as unknown as Capability, QUERY)).rejects.toThrow(NotACapability);
      expect(h.executed()).toBe(0);
    });

    it("refuses every cursor with any character changed (property)", async () => {
      const { next } = await page(agent, QUERY);
      const cursor = next as string;
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: cursor.length - 1 }), fc.nat({ max: alphabet.length - 1 }).map((i) => alphabet.charAt(i)), async (at, c) => {
          fc.pre(cursor[at] !== c);
          const edited = cursor.slice(0, at) + c + cursor.slice(at + 1);
          // A base64url string's last character may carry unused bits: an edit there can decode to the same bytes, and so the same cursor.
          const same = edited.split(".").every((part, i) => Buffer.from(part, "base64url").equals(Buffer.from(cursor.split(".")[i] ?? "", "base64url")));
          const result = await page(agent, { ...QUERY, cursor: edited }).then(
            (p) => p.rows.map((r) => r.id),
            (e: unknown) => e,
          );
          if (same) expect(result).toEqual([3, 7]);
          else expect(result).toBeInstanceOf(InvalidInput);
        }),
        { numRuns: 200 },
      );
    });
  });
});
