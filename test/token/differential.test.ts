import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { check, narrow, restrict, revocable, type Capability } from "../../src/kernel/capability.ts";
import { createManualClock } from "../../src/kernel/clock.ts";
import type { Decision } from "../../src/kernel/decision.ts";
import type { Grant } from "../../src/kernel/grant.ts";
import { biscuitDecision, type TokenDecision } from "../../src/token/authorizer.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { attenuate, createTokenMint, toToken, verify } from "../../src/token/token.ts";
import { grant, link, NOW, request, type Link } from "./arbitraries.ts";

const keys = generateKeyPair();
const publicKeys = { 7: keys.publicKey };
const clock = createManualClock(NOW);
const store = openSqliteTokenStore(":memory:");

function chain(rootGrant: Grant, links: readonly Link[]): Capability {
  let cap: Capability = mintFor(rootGrant).issue({ id: "alice", tenants: ["t1"] });
  for (const l of links) {
    cap = l.kind === "narrow" ? narrow(cap, l.grant) : l.kind === "restrict" ? restrict(cap, l.conditions) : revocable(cap).capability;
  }
  return cap;
}

function mintFor(g: Grant) {
  return createTokenMint({ store, issuer: "test", signingKey: keys.privateKey, keyId: 7, clock, policy: () => g });
}

/** A kernel decision in the token's terms: allowed, or the link and the kind of check that denied. */
function kernelTerms(d: Decision): TokenDecision {
  if (d.allowed) return { allowed: true };
  const rule = d.rule === "expiresAt" || d.rule === "tenants" ? d.rule : "domains";
  return { allowed: false, link: d.link, rule };
}

describe("a token decides exactly as the capability it came from", () => {
  it("kernel check == Biscuit authorizer on the compiled checks == verified capability (generated chains and requests)", () => {
    fc.assert(
      fc.property(grant, fc.array(link, { maxLength: 3 }), fc.array(request, { minLength: 1, maxLength: 8 }), (rootGrant, links, requests) => {
        const cap = chain(rootGrant, links);
        // Serialized before anything in the chain expires (toToken refuses a dead chain), then compared at NOW.
        clock.set(0);
        const token = toToken(cap);
        clock.set(NOW);
        // Verified before anything expires, then checked at the same instant as the original.
        const verifierClock = createManualClock(0);
        const verified = verify(token, { publicKeys, store, clock: verifierClock });
        verifierClock.set(NOW);
        expect(verified.lineage.map((l) => l.id)).toEqual(cap.lineage.map((l) => l.id));
        for (const r of requests) {
          const kernel = kernelTerms(check(cap, r));
          expect(biscuitDecision(token, { publicKeys, clock }, r), JSON.stringify(r)).toEqual(kernel);
          expect(kernelTerms(check(verified, r)), JSON.stringify(r)).toEqual(kernel);
        }
      }),
      { numRuns: 60 },
    );
  });

  it("offline attenuation never widens (generated)", () => {
    fc.assert(
      fc.property(grant, fc.array(link, { maxLength: 2 }), grant, fc.array(request, { minLength: 1, maxLength: 6 }), (rootGrant, links, extra, requests) => {
        clock.set(0);
        const token = toToken(chain(rootGrant, links));
        clock.set(NOW);
        const narrower = attenuate(token, extra, { publicKeys });
        const verifierClock = createManualClock(0);
        const before = verify(token, { publicKeys, store, clock: verifierClock });
        const after = verify(narrower, { publicKeys, store, clock: verifierClock });
        verifierClock.set(NOW);
        for (const r of requests) {
          if (check(after, r).allowed) expect(check(before, r).allowed).toBe(true);
          if (biscuitDecision(narrower, { publicKeys, clock }, r).allowed) expect(biscuitDecision(token, { publicKeys, clock }, r).allowed).toBe(true);
        }
      }),
      { numRuns: 40 },
    );
  });
});
