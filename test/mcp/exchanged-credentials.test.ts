import { describe, expect, it } from "vitest";
import { createManualClock } from "../../src/kernel/clock.ts";
import { createMint } from "../../src/kernel/mint.ts";
import type { RevocationList } from "../../src/kernel/internal.ts";
import { exchangedCredentials } from "../../src/mcp/exchanged-credentials.ts";

/*
 * The table of sessions' subject tokens is bounded: past its bound the least
 * recently used is forgotten. The gateway sizes it to its own session limit,
 * so no open session's token is forgotten for another session's.
 */

const nothingRevoked: RevocationList = {
  mintRevokedReason: () => null,
  linkRevokedReason: () => null,
  mintRefusal: () => null,
  subscribe: () => () => undefined,
};

function table(maxSubjects?: number) {
  const clock = createManualClock(1_000_000);
  const exchanger = { exchange: () => Promise.reject(new Error("not asked")) };
  return exchangedCredentials({ exchanger, revocations: nothingRevoked, clock, refreshBeforeMs: 30_000, ...(maxSubjects === undefined ? {} : { maxSubjects }) });
}

const mint = createMint({ issuer: "sessions", policy: () => ({ tools: ["a"] }) });

describe("the subject tokens kept for sessions", () => {
  it.each([
    ["by default", undefined, 10_000],
    ["under a gateway session limit below the default", 500, 10_000],
    ["under a gateway session limit above the default", 12_000, 12_000],
  ])("keeps %s as many as its bound, then forgets the oldest", (_what, maxSubjects, bound) => {
    const t = table(maxSubjects);
    const sessions = Array.from({ length: bound + 1 }, (_, i) => mint.issue({ id: `user-${String(i)}` }));
    for (const cap of sessions.slice(0, bound)) t.remember(cap, "token");
    expect(t.stats().subjects).toBe(bound);
    t.remember(sessions[bound] as (typeof sessions)[number], "token");
    expect(t.stats().subjects).toBe(bound);
    t.forget(sessions[bound] as (typeof sessions)[number]);
    expect(t.stats().subjects).toBe(bound - 1);
    t.close();
  });
});
