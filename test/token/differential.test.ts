import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { check, narrow, restrict, revocable, type Capability } from "../../src/kernel/capability.ts";
import { createManualClock } from "../../src/kernel/clock.ts";
import type { Decision } from "../../src/kernel/decision.ts";
import type { Grant } from "../../src/kernel/grant.ts";
import { biscuitDecision, type TokenDecision } from "../../src/token/authorizer.ts";
import { appendBlocks, generateKeyPair, renderBlock, type DatalogCode } from "../../src/token/biscuit.ts";
import { compileBlock, encodeBlock, type BlockData } from "../../src/token/block.ts";
import { InvalidToken } from "../../src/kernel/errors.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { attenuate, createTokenMint, readToken, toToken, verify } from "../../src/token/token.ts";
import { crafting, grant, httpGrant, httpRequest, link, NOW, request, type Crafting, type Link } from "./arbitraries.ts";

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
  const rule = d.rule === "expiresAt" || d.rule === "tenants" || d.rule === "approval" ? d.rule : "domains";
  return { allowed: false, link: d.link, rule };
}

/** Each generated test signs and verifies hundreds of tokens: a time limit generous for slow, loaded machines, never a speed check. */
const PROPERTY_TIMEOUT_MS = 120_000;

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
  }, PROPERTY_TIMEOUT_MS);

  it("address ranges, allowPrivateNetwork and IP-literal origins decide alike in the kernel and in Biscuit, through narrowings (generated)", () => {
    fc.assert(
      fc.property(httpGrant, fc.array(httpGrant, { maxLength: 2 }), fc.array(httpRequest, { minLength: 6, maxLength: 16 }), (rootGrant, narrowings, requests) => {
        const cap = chain(rootGrant, narrowings.map((g) => ({ kind: "narrow" as const, grant: g })));
        clock.set(NOW);
        const token = toToken(cap);
        for (const r of requests) expect(biscuitDecision(token, { publicKeys, clock }, r), JSON.stringify(r)).toEqual(kernelTerms(check(cap, r)));
      }),
      { numRuns: 40 },
    );
  }, PROPERTY_TIMEOUT_MS);

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
  }, PROPERTY_TIMEOUT_MS);

  it("a crafted block that prints like a narrowing block is refused, or decides as the kernel does (generated)", () => {
    fc.assert(
      fc.property(grant, grant, crafting, fc.array(request, { minLength: 1, maxLength: 6 }), (rootGrant, narrowGrant, how, requests) => {
        clock.set(0);
        const token = toToken(chain(rootGrant, []));
        clock.set(NOW);
        const code = craftedBlock(narrowGrant, how);
        let crafted: string;
        try {
          crafted = appendBlocks(token, new Map([[7, keys.publicKey]]), [code]);
        } catch {
          // Biscuit refused to build it (its source did not parse): nothing to verify.
          return;
        }
        let accepted = true;
        try {
          readToken(crafted, publicKeys);
        } catch (e) {
          expect(e).toBeInstanceOf(InvalidToken);
          accepted = false;
        }
        if (how !== "checks-in-one-string" || renderBlock(code) !== renderBlock(genuine(narrowGrant))) expect(accepted).toBe(false);
        if (!accepted) return;
        const verifierClock = createManualClock(0);
        const verified = verify(crafted, { publicKeys, store, clock: verifierClock });
        verifierClock.set(NOW);
        for (const r of requests) expect(kernelTerms(check(verified, r)), JSON.stringify(r)).toEqual(biscuitDecision(crafted, { publicKeys, clock }, r));
      }),
      { numRuns: 80 },
    );
  }, PROPERTY_TIMEOUT_MS);
});

let craftedIds = 0;

/** The block a holder would append for `g`. */
function genuine(g: Grant, id = `crafted-${craftedIds}`): DatalogCode {
  const data: BlockData = { v: 1, kind: "narrow", id, grant: g };
  const json = encodeBlock(data);
  return compileBlock(json, data).code;
}

/** A block crafted as `how` says, over the data of a narrowing to `g`. */
function craftedBlock(g: Grant, how: Crafting): DatalogCode {
  const id = `crafted-${++craftedIds}`;
  const real = genuine(g, id);
  const printed = renderBlock(real);
  const [fact = "", ...checks] = printed.trimEnd().split("\n");
  switch (how) {
    case "data-in-string": {
      const json = encodeBlock({ v: 1, kind: "narrow", id, grant: g });
      const rest = checks.join("\n");
      // The string runs from the fact's data through the checks' text, so the printing shows a fact and checks.
      return { source: "agentcap_block({j});", params: { j: rest === "" ? json : `${json}");\n${rest.slice(0, -3)}` } };
    }
    case "checks-in-one-string": {
      const text = checks.join("\n");
      const first = text.indexOf('"');
      const last = text.lastIndexOf('"');
      if (first < 0 || first === last) return { source: fact, params: {} };
      return { source: `${fact}\n${text.slice(0, first)}{s}${text.slice(last + 1)}`, params: { s: text.slice(first + 1, last) } };
    }
    case "no-checks":
      return { source: fact, params: {} };
    case "wider-data": {
      const wider = encodeBlock({ v: 1, kind: "narrow", id, grant: { ...g, tools: [...(g.tools ?? []), "a", "b", "c"] } });
      return { source: [`agentcap_block(hex:${Buffer.from(wider, "utf8").toString("hex")});`, ...checks].join("\n"), params: {} };
    }
  }
}
