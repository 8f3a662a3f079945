import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { authorize, check, createManualClock, createMint, InvalidInput, narrow, revocationSignal, Revoked, type Decision, type Grant } from "../../src/index.ts";
import { caretaker, labelsOf, narrowedCaretaker } from "../../src/kernel/internal.ts";
import { grant, NOW, request } from "../token/arbitraries.ts";

/*
 * The dispatcher gives each call's handler one link that narrows to the
 * call's needs and is revocable (narrowedCaretaker), where it gave two (a
 * narrowing, then a caretaker's forwarder). The one link must decide every
 * request exactly as the two do, while live and once revoked, and carry
 * the same labels.
 */

/** What a decision says, without the ids of the links (which differ between the two chains). */
function verdict(d: Decision): unknown {
  return d.allowed ? { allowed: true, shadow: d.shadow } : { allowed: false, code: d.code, rule: d.rule, because: d.because, link: d.link };
}

/** The two-link chain's decision, with the denial's link index moved onto the one-link chain (whose last link stands for both). */
function asOneLink(d: Decision, last: number): unknown {
  if (d.allowed || d.link < last) return verdict(d);
  return { ...(verdict(d) as object), link: last - 1 };
}

/** A root that allows every request of the generators' universe, so that the narrowing alone decides most of them. */
const WIDE: Grant = {
  tools: ["a", "b", "c", "back\\slash\nnewline", "zz"],
  fs: [{ path: "/", ops: ["read", "write", "list", "delete"] }],
  http: ["https://a.com", "http://a.com", "http://10.0.0.1", "http://[::1]", "https://b.com"].map((origin) => ({ origin, methods: ["GET", "POST", "PUT"] as const, allowPrivateNetwork: true })),
  db: ["C", "D"].map((model) => ({ model, ops: ["read", "update", "delete"] as const })),
  exec: ["/bin/ls", "/bin/cat"].map((program) => ({ program, allowExtraArgs: true })),
  revoke: [{ target: "principal" }, { target: "session" }, { target: "link" }],
  audit: ["read"],
};
const rootGrants = fc.oneof({ weight: 2, arbitrary: fc.constant(WIDE) }, { weight: 1, arbitrary: grant });
const narrowings = fc.oneof({ weight: 3, arbitrary: grant }, { weight: 1, arbitrary: fc.constant(WIDE) });

const labels = fc.constantFrom({ tool: "read" }, { tool: "write", purpose: "bench" }, {});

describe("narrowedCaretaker", () => {
  it("property: one link decides every request as a narrowing and a caretaker's forwarder do, live and revoked", () => {
    let allowed = 0;
    fc.assert(
      fc.property(rootGrants, fc.option(grant, { nil: undefined, freq: 3 }), narrowings, labels, fc.array(request, { minLength: 1, maxLength: 4 }), (rootGrant, middle, g, l, requests) => {
        // Each chain from a root of its own: authorizing charges every link up the chain, and the two must not share one.
        const base = () => {
          const root = createMint({ issuer: "test", clock: createManualClock(NOW), policy: () => rootGrant }).issue({ id: "alice" });
          return middle === undefined ? root : narrow(root, middle);
        };
        const cap = base();
        const one = narrowedCaretaker(cap, g, l);
        const two = caretaker(narrow(base(), g), l);
        const last = two.capability.depth;
        expect(one.capability.depth).toBe(last - 1);
        expect(labelsOf(one.capability)).toEqual(labelsOf(two.capability));
        expect(one.capability.grant).toEqual(narrow(cap, g).grant);
        for (const r of requests) {
          const decided = check(one.capability, r);
          if (decided.allowed) allowed++;
          expect(verdict(decided)).toEqual(asOneLink(check(two.capability, r), last));
          expect(verdict(authorize(one.capability, r))).toEqual(asOneLink(authorize(two.capability, r), last));
        }
        one.revoke("done");
        two.revoke("done");
        expect(one.isRevoked()).toBe(true);
        for (const r of requests) {
          const [a, b] = [check(one.capability, r), check(two.capability, r)];
          expect(a.allowed || b.allowed).toBe(false);
          expect(!a.allowed && a.code).toBe(!b.allowed && b.code);
        }
      }),
      { numRuns: 300 },
    );
    expect(allowed).toBeGreaterThan(20);
  });

  it("fires a revocation signal taken on the link, and refuses a bad grant as narrow does", () => {
    const mint = createMint({ issuer: "test", policy: () => ({ tools: ["a"] }) });
    const lease = narrowedCaretaker(mint.issue({ id: "alice" }), { tools: ["a"] }, { tool: "a" });
    const { signal } = revocationSignal(lease.capability);
    lease.revoke("the call has returned");
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(Revoked);
    expect(() => narrowedCaretaker(mint.issue({ id: "alice" }), { tools: [7] } as never, {})).toThrow(InvalidInput);
  });
});
