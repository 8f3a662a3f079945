import { describe, expect, it } from "vitest";
import { LeaseBook, MIN_LEASE_CALLS } from "../../src/token/lease-book.ts";

/* The lease arithmetic alone, with no Postgres: what a process may charge, and what it asks for. */

const limits = { key: "k", maxCalls: 40, maxCost: null } as const;
const book = (share = 1 / 8, armAhead = 4) => new LeaseBook({ ttlMs: 1000, share, armAhead });
const fresh = { maxCalls: 40, maxCost: null, spentCalls: 0, spentCost: 0, heldCalls: 0, heldCost: 0 };

describe("lease book", () => {
  it("takes a share of the allowance (at least four calls), and arms only a few ahead of use", () => {
    const b = book();
    const plan = b.plan(limits, fresh, false, 0);
    expect(plan).toEqual({ heldCalls: Math.max(MIN_LEASE_CALLS, 5), heldCost: 0, armedCalls: 4, armedCost: 0 });
    expect(book().plan({ key: "k", maxCalls: 2, maxCost: null }, { ...fresh, maxCalls: 2 }, false, 0)).toMatchObject({ heldCalls: 2, armedCalls: 2 });
  });

  it("charges only armed units of a live lease, all or nothing, and asks for more when short or low", () => {
    const b = book();
    expect(b.charge([limits], 0, 0)).toEqual({ charged: false, topUp: [limits] });
    b.commit(limits, { heldCalls: 5, heldCost: 0, armedCalls: 2, armedCost: 0 }, 0);
    expect(b.charge([limits], 0, 10).charged).toBe(true);
    expect(b.charge([limits], 0, 10)).toMatchObject({ charged: true, topUp: [limits] });
    expect(b.charge([limits], 0, 10)).toEqual({ charged: false, topUp: [limits] });
    expect(b.get("k")).toMatchObject({ usedCalls: 2 });
  });

  it("charges nothing after the lease's deadline, and forgets a lease another process reclaimed", () => {
    const b = book();
    b.commit(limits, { heldCalls: 5, heldCost: 0, armedCalls: 5, armedCost: 0 }, 0);
    expect(b.charge([limits], 0, 1000).charged).toBe(false);
    b.renewed(["k"], new Set(), 1000);
    expect(b.get("k")).toBeUndefined();
  });

  it("never plans more than the allowance has room for, counting what others hold and what is spent", () => {
    const b = book(1);
    expect(b.plan(limits, { ...fresh, spentCalls: 30, heldCalls: 8 }, false, 0)).toMatchObject({ heldCalls: 2 });
    expect(b.plan(limits, { ...fresh, spentCalls: 40 }, false, 0)).toBeNull();
    const cost = { key: "c", maxCalls: null, maxCost: 10 };
    expect(b.plan(cost, { ...fresh, maxCalls: null, maxCost: 10, spentCost: 7 }, false, 1)).toEqual({ heldCalls: 0, heldCost: 3, armedCalls: 0, armedCost: 3 });
  });
});
