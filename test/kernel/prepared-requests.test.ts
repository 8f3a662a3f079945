import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { authorize, check, createManualClock, createMint, InvalidInput, narrow, restrict, revocable, type Capability, type DbRequest, type Grant } from "../../src/index.ts";
import { checkRequest, checkRequestBySchema, preparedRequest } from "../../src/kernel/request.ts";

/*
 * A prepared request is a frozen copy the kernel checked once; its verdict on
 * a chain's tenants and domains is worked out once per chain. Decisions on it
 * must equal decisions on the plain request, call after call, whatever
 * happens to the capability (revoked, expired, used up) and whichever
 * capability asks (a narrower one gets its own verdict).
 */

const FIELDS = ["a", "b", "c", "d"] as const;
const request = (fields: readonly string[], scope: Record<string, number>, tenant?: string): DbRequest => ({
  action: "db.read",
  model: "M",
  fields: [...fields],
  scope,
  ...(tenant === undefined ? {} : { tenant }),
});

function setup(grant: Grant = { db: [{ model: "M", ops: ["read"], fields: [...FIELDS] }] }) {
  const clock = createManualClock(0);
  const root = createMint({ issuer: "prepared", clock, policy: () => grant }).issue({ id: "u" });
  return { clock, root };
}

describe("prepared requests", () => {
  it("are deep-frozen copies, checked as the request itself is", () => {
    const plain = request(["a", "b"], { t: 1 });
    const prepared = preparedRequest(plain);
    expect(prepared).not.toBe(plain);
    expect(prepared).toEqual(plain);
    expect(Object.isFrozen(prepared) && Object.isFrozen(prepared.fields) && Object.isFrozen(prepared.scope)).toBe(true);
    expect(() => (prepared.fields as string[]).push("c")).toThrow(TypeError);
    expect(checkRequest(prepared)).toEqual(checkRequestBySchema(plain));
    // The original stays the caller's: changing it changes nothing that was prepared.
    (plain.fields as string[]).push("d");
    expect(checkRequest(prepared)).toEqual(checkRequestBySchema(request(["a", "b"], { t: 1 })));
  });

  it("a malformed request is returned as it is, and the decision refuses it with InvalidInput", () => {
    const { root } = setup();
    const bad = { action: "db.read", model: "M", fields: ["not an identifier"], scope: {} } as DbRequest;
    expect(preparedRequest(bad)).toBe(bad);
    expect(() => check(root, preparedRequest(bad))).toThrow(InvalidInput);
  });

  it("a cached allowed verdict does not outlive revocation, expiry or the last use", () => {
    const { clock, root } = setup();
    const asked = preparedRequest(request(["a"], {}));
    const r = revocable(root);
    expect(authorize(r.capability, asked).allowed).toBe(true);
    r.revoke("done");
    expect(authorize(r.capability, asked)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    const expiring = restrict(root, { expiresAt: 100 });
    expect(authorize(expiring, asked).allowed).toBe(true);
    clock.advance(200);
    expect(authorize(expiring, asked)).toMatchObject({ allowed: false, code: "ERR_EXPIRED" });
    const once = restrict(root, { maxUses: 1 });
    expect(authorize(once, asked).allowed).toBe(true);
    expect(authorize(once, asked)).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });
    expect(authorize(root, asked).allowed).toBe(true);
  });

  it("a narrower capability asking the same prepared request gets its own verdict, before or after its parent's", () => {
    const { root } = setup({ db: [{ model: "M", ops: ["read"], fields: [...FIELDS] }], tenants: ["x", "y"] });
    const asked = preparedRequest(request(["a", "b"], {}, "x"));
    const fewerFields = narrow(root, { db: [{ model: "M", ops: ["read"], fields: ["a"] }] });
    const otherTenant = restrict(root, { tenants: ["y"] });
    expect(check(root, asked).allowed).toBe(true);
    expect(check(fewerFields, asked)).toMatchObject({ allowed: false, link: 1, rule: "db" });
    expect(check(otherTenant, asked)).toMatchObject({ allowed: false, link: 1, rule: "tenants" });
    expect(check(root, asked).allowed).toBe(true);
    // And the other way round, on a request no chain has decided yet.
    const later = preparedRequest(request(["b"], {}, "x"));
    expect(check(fewerFields, later)).toMatchObject({ allowed: false, link: 1 });
    expect(check(root, later).allowed).toBe(true);
  });

  it("property: decisions on a prepared request equal those on the plain request, repeated, along any chain", () => {
    const fields = fc.subarray([...FIELDS], { minLength: 1 });
    const scope = fc.dictionary(fc.constantFrom("t", "u"), fc.integer({ min: 1, max: 2 }), { maxKeys: 2 });
    const rule = fc.record({ fields, scope }, { requiredKeys: ["fields"] }).map((r) => ({ model: "M", ops: ["read" as const], ...r }));
    const link = fc.oneof(
      fc.array(rule, { minLength: 1, maxLength: 2 }).map((db) => ({ kind: "narrow" as const, db })),
      fc.constant({ kind: "tenants" as const }),
      fc.constant({ kind: "revoked" as const }),
    );
    fc.assert(
      fc.property(fc.array(link, { maxLength: 3 }), fields, scope, fc.constantFrom(undefined, "x"), (links, asked, pinned, tenant) => {
        const { root } = setup();
        const chain: Capability[] = [root];
        for (const l of links) {
          const cap = chain.at(-1) as Capability;
          if (l.kind === "narrow") chain.push(narrow(cap, { db: l.db }));
          else if (l.kind === "tenants") chain.push(restrict(cap, { tenants: ["x"] }));
          else {
            const r = revocable(cap);
            r.revoke();
            chain.push(r.capability);
          }
        }
        const plain = request(asked, pinned, tenant);
        const prepared = preparedRequest(plain);
        // Every capability of the chain asks, deepest first and then again from the root: each verdict is its own.
        for (const cap of [...[...chain].reverse(), ...chain]) expect(check(cap, prepared)).toEqual(check(cap, plain));
      }),
      { numRuns: 300 },
    );
  });
});
