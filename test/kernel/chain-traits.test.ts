import { describe, expect, it } from "vitest";
import { authorize, check, createManualClock, createMint, expiresAt, narrow, restrict, revocable, shadow } from "../../src/index.ts";

/*
 * Each link records what its chain holds (limits, rates, approvals, shadow
 * links, the earliest expiry) so a decision skips walks that cannot deny.
 * These tests try to slip past that: a condition added deep in a chain that
 * had none must still decide, and an expiry must name the first expired link.
 */

const setup = () => {
  const clock = createManualClock(0);
  const root = createMint({ issuer: "traits", clock, policy: () => ({ tools: ["a", "b"] }) }).issue({ id: "u" });
  return { clock, root };
};
const call = { action: "tool.call", tool: "a" } as const;

describe("chain traits", () => {
  it("an expiry names the first link of the chain that has expired, and the chain's earliest expiry is reported", () => {
    const { clock, root } = setup();
    const cap = revocable(restrict(restrict(narrow(root, { tools: ["a"] }), { expiresAt: 100 }), { expiresAt: 50 })).capability;
    expect(expiresAt(cap)).toBe(50);
    expect(check(cap, call).allowed).toBe(true);
    clock.advance(60);
    expect(check(cap, call)).toMatchObject({ allowed: false, code: "ERR_EXPIRED", link: 3 });
    clock.advance(60);
    expect(check(cap, call)).toMatchObject({ allowed: false, code: "ERR_EXPIRED", link: 2 });
  });

  it("a use limit, a rate and a shadow link added under links without them still decide", () => {
    const { root } = setup();
    const plain = revocable(narrow(root, { tools: ["a", "b"] })).capability;
    const once = restrict(plain, { maxUses: 1 });
    expect(authorize(once, call).allowed).toBe(true);
    expect(authorize(once, call)).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });
    const rated = restrict(plain, { rates: [{ per: 60, calls: 1 }] });
    expect(authorize(rated, call).allowed).toBe(true);
    expect(authorize(rated, call)).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });
    const watched = revocable(shadow(plain, { tools: ["b"] })).capability;
    expect(check(watched, call)).toMatchObject({ allowed: true, shadow: { rule: "tools" } });
    // The links above are untouched by what was added below them.
    expect(check(plain, call)).toEqual({ allowed: true, capabilityId: plain.id });
  });
});
