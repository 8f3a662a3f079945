import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { assertAuthorized, authorize, check, narrow, restrict, type Capability } from "../../src/kernel/capability.ts";
import { createManualClock } from "../../src/kernel/clock.ts";
import { BudgetExhausted, InvalidInput } from "../../src/kernel/errors.ts";
import { parseConditions, parseGrant, type Grant } from "../../src/kernel/grant.ts";
import { createMint } from "../../src/kernel/mint.ts";

const T0 = 1_700_000_000_000;
const tool = (name: string) => ({ action: "tool.call" as const, tool: name });

function root(grant: Grant) {
  const clock = createManualClock(T0);
  const cap = createMint({ issuer: "t", clock, policy: () => grant }).issue({ id: "alice", tenants: [] });
  return { clock, cap };
}

describe("windowed rates", () => {
  it("10 calls per minute: the eleventh is refused with when to retry, and fits once the first leaves the window", () => {
    const { clock, cap } = root({ tools: ["search"], rates: [{ per: 60, calls: 10 }] });
    for (let i = 0; i < 10; i++) {
      expect(authorize(cap, tool("search")).allowed).toBe(true);
      clock.advance(1000);
    }
    const refused = authorize(cap, tool("search"));
    expect(refused).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED", rule: "rates.0", retryAt: T0 + 60_000 });
    expect(refused.allowed ? "" : refused.because).toBe("allows 10 calls per minute; retry after 2023-11-14T22:14:20.000Z (in 50 s)");
    const error = (() => {
      try {
        assertAuthorized(cap, tool("search"));
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(BudgetExhausted);
    expect((error as BudgetExhausted).details.retryAt).toBe(T0 + 60_000);
    clock.set(T0 + 59_999);
    expect(check(cap, tool("search")).allowed).toBe(false);
    clock.set(T0 + 60_000);
    expect(authorize(cap, tool("search")).allowed).toBe(true);
    expect(authorize(cap, tool("search")).allowed).toBe(false);
  });

  it("500 cost units per day, and a request that alone exceeds the rate is told it never fits", () => {
    const { clock, cap } = root({ tools: ["llm"], rates: [{ per: 86400, cost: 500 }] });
    expect(authorize(cap, tool("llm"), { cost: 300 }).allowed).toBe(true);
    clock.advance(3_600_000);
    expect(authorize(cap, tool("llm"), { cost: 150 }).allowed).toBe(true);
    const full = authorize(cap, tool("llm"), { cost: 100 });
    expect(full).toMatchObject({ allowed: false, retryAt: T0 + 86_400_000 });
    expect(full.allowed ? "" : full.because).toContain("has 50 left");
    expect(authorize(cap, tool("llm"), { cost: 50 }).allowed).toBe(true);
    const never = authorize(cap, tool("llm"), { cost: 501 });
    expect(never.allowed ? "" : never.because).toContain("it never will");
    expect("retryAt" in never).toBe(false);
    clock.set(T0 + 86_400_000);
    expect(authorize(cap, tool("llm"), { cost: 300 }).allowed).toBe(true);
  });

  it("counts per tool or per action when it names them, and check charges nothing", () => {
    const { cap } = root({
      tools: ["a", "b"],
      fs: [{ path: "/data", ops: ["read", "write"] }],
      rates: [
        { per: 60, calls: 1, tools: ["a"] },
        { per: 60, calls: 2, actions: ["fs.write"] },
      ],
    });
    for (let i = 0; i < 5; i++) expect(check(cap, tool("a")).allowed).toBe(true);
    expect(authorize(cap, tool("a")).allowed).toBe(true);
    expect(authorize(cap, tool("a"))).toMatchObject({ rule: "rates.0" });
    for (let i = 0; i < 5; i++) expect(authorize(cap, tool("b")).allowed).toBe(true);
    expect(authorize(cap, { action: "fs.write", path: "/data/x" }).allowed).toBe(true);
    expect(authorize(cap, { action: "fs.read", path: "/data/x" }).allowed).toBe(true);
    expect(authorize(cap, { action: "fs.write", path: "/data/y" }).allowed).toBe(true);
    expect(authorize(cap, { action: "fs.write", path: "/data/z" })).toMatchObject({ rule: "rates.1" });
  });

  it("is charged up the chain: siblings share their ancestor's window, and a looser child changes nothing", () => {
    const { cap } = root({ tools: ["a"], rates: [{ per: 60, calls: 3 }] });
    const left = narrow(cap, { tools: ["a"], rates: [{ per: 60, calls: 100 }] });
    const right = restrict(cap, { rates: [{ per: 1, calls: 100 }] });
    expect(authorize(left, tool("a")).allowed).toBe(true);
    expect(authorize(right, tool("a")).allowed).toBe(true);
    expect(authorize(left, tool("a")).allowed).toBe(true);
    expect(authorize(right, tool("a"))).toMatchObject({ allowed: false, link: 0, rule: "rates.0" });
    expect(authorize(cap, tool("a")).allowed).toBe(false);
  });

  it("no link ever allows more than its rate within any window (generated spends over a tree)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(fc.nat(2), fc.integer({ min: 0, max: 4000 }), fc.integer({ min: 0, max: 3 })), { maxLength: 60 }),
        (rootCalls, childCalls, steps) => {
          const { clock, cap } = root({ tools: ["a"], rates: [{ per: 5, calls: rootCalls }] });
          const kids: Capability[] = [narrow(cap, { tools: ["a"], rates: [{ per: 3, calls: childCalls, cost: 5 }] }), restrict(cap, {}), cap];
          const allowed: { at: number; who: number; cost: number }[] = [];
          for (const [who, wait, cost] of steps) {
            clock.advance(wait);
            if (authorize(kids[who] as Capability, tool("a"), { cost }).allowed) allowed.push({ at: clock.now(), who, cost });
          }
          for (const a of allowed) {
            const inRoot = allowed.filter((b) => b.at > a.at - 5000 && b.at <= a.at);
            expect(inRoot.length).toBeLessThanOrEqual(rootCalls);
            const inChild = inRoot.filter((b) => b.who === 0 && b.at > a.at - 3000);
            expect(inChild.length).toBeLessThanOrEqual(childCalls);
            expect(inChild.reduce((sum, b) => sum + b.cost, 0)).toBeLessThanOrEqual(5);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("refuses malformed rates with a message naming the field", () => {
    const bad: [unknown, RegExp][] = [
      [{ rates: [{ per: 60 }] }, /must limit calls, cost or both/],
      [{ rates: [{ per: 0, calls: 1 }] }, /rates\.0\.per/],
      [{ rates: [{ per: 31 * 86400 + 1, calls: 1 }] }, /rates\.0\.per/],
      [{ rates: [{ per: 1.5, calls: 1 }] }, /rates\.0\.per/],
      [{ rates: [{ per: 60, calls: -1 }] }, /rates\.0\.calls/],
      [{ rates: [{ per: 60, calls: 1, actions: ["fs.chmod"] }] }, /rates\.0\.actions/],
      [{ rates: [] }, /rates/],
      [{ rates: Array.from({ length: 17 }, () => ({ per: 1, calls: 1 })) }, /rates/],
    ];
    for (const [c, message] of bad) {
      expect(() => parseConditions(c), JSON.stringify(c)).toThrow(message);
      expect(() => parseGrant(c), JSON.stringify(c)).toThrow(InvalidInput);
    }
  });
});
