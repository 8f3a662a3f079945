import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { check, narrow, restrict, revocable, stampApproval, type Capability } from "../../src/kernel/capability.ts";
import { createManualClock } from "../../src/kernel/clock.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { parseGrant, type Grant } from "../../src/kernel/grant.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { checkRequest, type Request } from "../../src/kernel/request.ts";
import { requestKey } from "../../src/kernel/rules.ts";
import { argumentsHash } from "../../src/kernel/arguments-hash.ts";
import { grant, link, NOW, request, type Link } from "../token/arbitraries.ts";

const clock = createManualClock(NOW);
const everyone = { principal: "zed", roles: ["admin"] };

function chain(root: Grant, links: readonly Link[]): Capability {
  let cap: Capability = createMint({ issuer: "t", clock, policy: () => root }).issue({ id: "alice", tenants: ["t1"] });
  for (const l of links) cap = l.kind === "narrow" ? narrow(cap, l.grant) : l.kind === "restrict" ? restrict(cap, l.conditions) : revocable(cap).capability;
  return cap;
}

/** Whether some link of the chain asks approval of `r` (decided without arguments, so every argument pattern counts). */
function asked(grants: readonly Grant[], r: Request): boolean {
  const c = checkRequest(r);
  return grants.some((g) => (g.approval ?? []).some((rule) => (rule.tools !== undefined && c.kind === "tool" && rule.tools.includes(c.tool)) || (rule.actions ?? []).includes(c.action)));
}

const args = fc.oneof(fc.constant(undefined), fc.record({ to: fc.constantFrom("ext:x", "int:y"), amount: fc.constantFrom("1", "2") }));

describe("approval rules narrow like every grant", () => {
  it("no narrowing drops an approval requirement: a request a link asks approval of is never allowed without one (generated)", () => {
    fc.assert(
      fc.property(grant, fc.array(link, { maxLength: 4 }), fc.array(request, { minLength: 1, maxLength: 6 }), (root, links, requests) => {
        const cap = chain(root, links);
        const grants = [root, ...links.flatMap((l) => (l.kind === "narrow" ? [l.grant] : []))];
        for (const r of requests) {
          if (asked(grants, r)) expect(check(cap, r).allowed, JSON.stringify(r)).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("an approval holds for exactly the request and arguments it binds, and only for links before it (generated)", () => {
    fc.assert(
      fc.property(grant, fc.array(link, { maxLength: 2 }), request, args, request, args, grant, (root, links, bound, boundArgs, asked2, askedArgs, later) => {
        const cap = chain(root, links);
        const stamped = stampApproval(cap, {
          id: "a1",
          approvers: [everyone, { principal: "alice", roles: ["admin"] }, { principal: "bob", roles: [] }],
          bindings: [{ request: requestKey(checkRequest(bound)), args: boundArgs === undefined ? null : argumentsHash(boundArgs) }],
        }, { maxUses: 1 });
        const options = askedArgs === undefined ? {} : { args: askedArgs };
        const after = check(stamped, asked2, options);
        const before = check(cap, asked2, options);
        // The stamp only lifts a need for approval: it never allows what the chain denies otherwise.
        if (after.allowed && !before.allowed) {
          expect(before.code).toBe("ERR_APPROVAL_REQUIRED");
          expect(requestKey(checkRequest(asked2))).toBe(requestKey(checkRequest(bound)));
          if (boundArgs !== undefined) expect(askedArgs).toEqual(boundArgs);
        }
        if (!after.allowed) expect(before.allowed).toBe(false);
        // A link appended after the approval states requirements the approval does not meet.
        const tighter = narrow(stamped, later);
        if (check(tighter, asked2, options).allowed) expect(after.allowed).toBe(true);
        if (check(tighter, asked2).allowed) expect(asked([later], asked2)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses malformed approval rules with a message naming the field", () => {
    const bad: [unknown, RegExp][] = [
      [{ approval: [{ approvers: ["bob"] }] }, /must name the tools or the actions/],
      [{ approval: [{ tools: ["x"], approvers: [] }] }, /approval\.0\.approvers/],
      [{ approval: [{ tools: ["x"], approvers: ["bob"], quorum: 2 }] }, /asks 2 approvers to agree but names only 1/],
      [{ approval: [{ tools: ["x"], approvers: ["bob"], quorum: 0 }] }, /approval\.0\.quorum/],
      [{ approval: [{ tools: ["x"], approvers: ["role:a"], quorum: 17 }] }, /approval\.0\.quorum/],
      [{ approval: [{ actions: ["db.drop"], approvers: ["bob"] }] }, /approval\.0\.actions/],
      [{ approval: [{ tools: ["x"], approvers: ["bob"], input: { to: { regex: "." } } }] }, /approval\.0\.input/],
    ];
    for (const [g, message] of bad) expect(() => parseGrant(g), JSON.stringify(g)).toThrow(message);
    expect(() => parseGrant({ approval: [{ tools: ["x"], approvers: ["bob"] }] })).not.toThrow();
    expect(() => argumentsHash(() => 1)).toThrow(InvalidInput);
  });

  it("a call's arguments hash the same however their keys are ordered", () => {
    expect(argumentsHash({ a: 1, b: [1, { c: 2, d: 3 }] })).toBe(argumentsHash({ b: [1, { d: 3, c: 2 }], a: 1 }));
    expect(argumentsHash({ a: 1 })).not.toBe(argumentsHash({ a: "1" }));
  });
});
