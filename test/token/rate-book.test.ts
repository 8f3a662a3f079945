import { describe, expect, it } from "vitest";
import { RateBook } from "../../src/token/rate-book.ts";

const TTL = 30_000;
const tenPerMinute = { key: "k/rates.0", maxCalls: 10, maxCost: null, perMs: 60_000 };

describe("reservations in shared windows", () => {
  it("reserves a share of what the counted rows leave, at least two calls, never more than is left", () => {
    const book = new RateBook({ ttlMs: TTL, share: 1 / 8 });
    expect(book.plan(tenPerMinute, [], 0)).toEqual({ calls: 2, cost: null });
    expect(book.plan(tenPerMinute, [{ calls: 9, cost: null, until: 5 }], 0)).toEqual({ calls: 1, cost: null });
    expect(new RateBook({ ttlMs: TTL, share: 1 }).plan(tenPerMinute, [{ calls: 3, cost: null, until: 5 }], 0)).toEqual({ calls: 7, cost: null });
  });

  it("a full window says when enough of its oldest rows stop being counted; a request that alone exceeds it never fits", () => {
    const book = new RateBook({ ttlMs: TTL, share: 1 / 8 });
    const rows = [
      { calls: 4, cost: null, until: 300 },
      { calls: 6, cost: null, until: 100 },
    ];
    expect(book.plan(tenPerMinute, rows, 0)).toEqual({ retryAt: 100 });
    const costly = { key: "k/rates.1", maxCalls: null, maxCost: 10, perMs: 60_000 };
    expect(book.plan(costly, [{ calls: null, cost: 8, until: 100 }, { calls: null, cost: 1, until: 50 }], 2)).toEqual({ retryAt: 50 });
    expect(book.plan(costly, [{ calls: null, cost: 8, until: 100 }, { calls: null, cost: 1, until: 50 }], 3)).toEqual({ retryAt: 100 });
    expect(book.plan(costly, [], 11)).toEqual({ retryAt: null });
    expect(book.refusal(costly, 11, 0, 0)).toMatchObject({ retryAt: null });
    expect(book.refusal({ ...tenPerMinute, maxCalls: 0 }, 0, 0, 0)).toMatchObject({ retryAt: null });
  });

  it("charges only from live reservations with room, all or none, and asks for more once the last one is half used", () => {
    const book = new RateBook({ ttlMs: TTL, share: 1 / 8 });
    const other = { ...tenPerMinute, key: "other/rates.0" };
    expect(book.charge([tenPerMinute], 0, 0)).toMatchObject({ charged: false, more: [tenPerMinute] });
    book.add(tenPerMinute, { id: "1", calls: 2, cost: null }, 0);
    expect(book.charge([tenPerMinute, other], 0, 1)).toMatchObject({ charged: false, more: [other] });
    const first = book.charge([tenPerMinute], 0, 1);
    expect(first).toMatchObject({ charged: true, more: [tenPerMinute], spent: [] });
    const second = book.charge([tenPerMinute], 0, 2);
    expect(second.spent.map((s) => s.reservation.id)).toEqual(["1"]);
    expect(book.charge([tenPerMinute], 0, 3).charged).toBe(false);
    // After its lease, a reservation charges nothing and is given back.
    book.add(tenPerMinute, { id: "2", calls: 2, cost: null }, 10);
    expect(book.charge([tenPerMinute], 0, 10 + TTL).charged).toBe(false);
    expect(book.expire(tenPerMinute.key, 10 + TTL).map((r) => r.id)).toEqual(["2"]);
  });

  it("while full, a refusal gives the time Postgres said; before asking, a moment from now", () => {
    const book = new RateBook({ ttlMs: TTL, share: 1 / 8 });
    expect(book.refusal(tenPerMinute, 0, 0, 1000)).toMatchObject({ retryAt: 2000 });
    book.full(tenPerMinute, 50_000);
    expect(book.refusal(tenPerMinute, 0, 0, 1000)).toMatchObject({ retryAt: 50_000, because: "allows 10 calls per 60 s, shared by every process" });
  });
});
