import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { openAuditStore } from "../../src/audit/open.ts";
import { registerAuditCommand } from "../../src/cli/audit-command.ts";
import { authorize, check, narrow, restrict, revocable, shadow, type Capability } from "../../src/kernel/capability.ts";
import { createManualClock } from "../../src/kernel/clock.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import type { Grant } from "../../src/kernel/grant.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { defineTool } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { createTokenMint, toToken } from "../../src/token/token.ts";
import { grant, link, NOW, request, type Link } from "../token/arbitraries.ts";

const clock = createManualClock(NOW);

function chain(root: Grant, links: readonly Link[]): Capability {
  let cap: Capability = createMint({ issuer: "t", clock, policy: () => root }).issue({ id: "alice", tenants: ["t1"] });
  for (const l of links) cap = l.kind === "narrow" ? narrow(cap, l.grant) : l.kind === "restrict" ? restrict(cap, l.conditions) : revocable(cap).capability;
  return cap;
}

/** A shadow grant: domains, tenants and expiry (approval rules and limits are not what a shadow observes). */
const observed = grant.map((g) => Object.fromEntries(Object.entries(g).filter(([k]) => !["approval", "maxUses", "budget"].includes(k))) as Grant);

describe("shadow mode", () => {
  it("decides exactly as the enforced capability, and disagrees exactly where the narrowing would deny (generated)", () => {
    fc.assert(
      fc.property(grant, fc.array(link, { maxLength: 3 }), observed, fc.array(request, { minLength: 1, maxLength: 8 }), (root, links, tried, requests) => {
        const cap = chain(root, links);
        const shadowed = shadow(cap, tried);
        for (const r of requests) {
          const enforced = check(cap, r);
          const seen = check(shadowed, r);
          expect(seen.allowed).toBe(enforced.allowed);
          if (!seen.allowed) continue;
          const wouldBe = check(narrow(cap, tried), r);
          expect(seen.shadow !== undefined, JSON.stringify(r)).toBe(!wouldBe.allowed);
          if (seen.shadow !== undefined && !wouldBe.allowed) expect(seen.shadow.rule).toBe(wouldBe.rule);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("acts as the enforced capability: a shadow denial charges and blocks nothing", () => {
    const cap = createMint({ issuer: "t", clock, policy: () => ({ tools: ["a", "b"], maxUses: 2 }) }).issue({ id: "alice", tenants: [] });
    const tried = shadow(cap, { tools: ["a"] });
    expect(authorize(tried, { action: "tool.call", tool: "b" })).toEqual({ allowed: true, capabilityId: tried.id, shadow: { link: 1, linkId: tried.id, rule: "tools", because: 'does not grant tool "b"' } });
    expect(authorize(tried, { action: "tool.call", tool: "a" })).toEqual({ allowed: true, capabilityId: tried.id });
    expect(authorize(tried, { action: "tool.call", tool: "a" })).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });
    expect(tried.lineage.at(-1)?.shadow).toEqual({ tools: ["a"] });
    expect(() => shadow(cap, { tools: "a" } as unknown as Grant)).toThrow(InvalidInput);
  });

  it("a link in shadow never becomes a token", async () => {
    const keys = generateKeyPair();
    const store = openSqliteTokenStore(":memory:");
    const cap = createTokenMint({ store, issuer: "t", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }) }).issue({ id: "alice", tenants: [] });
    expect(() => toToken(shadow(cap, { tools: [] }))).toThrow(/attached in shadow/);
    await store.close();
  });

  it("disagreements are recorded with each tool call, and audit query --shadow-diff groups them by tool and rule", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agentcap-shadow-"));
    try {
      const path = join(dir, "audit.db");
      const store = await openAuditStore({ kind: "sqlite", path });
      const echo = (name: string) =>
        defineTool({ name, description: name, input: z.object({ path: z.string() }), needs: ({ path }) => [{ action: "fs.read", path }] }, () => name);
      const dispatcher = createDispatcher({ tools: [echo("read"), echo("search")], audit: store });
      const cap = createMint({ issuer: "t", policy: () => ({ tools: ["read", "search"], fs: [{ path: "/data", ops: ["read"] }] }) }).issue({ id: "alice", tenants: [] });
      const tried = shadow(cap, { tools: ["read"], fs: [{ path: "/data/public", ops: ["read"] }] });
      await dispatcher.call("read", { path: "/data/public/a" }, tried);
      await dispatcher.call("read", { path: "/data/private/b" }, tried);
      await dispatcher.call("read", { path: "/data/private/c" }, tried);
      await dispatcher.call("search", { path: "/data/public/a" }, tried);
      await store.close();
      let out = "";
      const program = new Command("agentcap").exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
      registerAuditCommand(program, { out: (s) => (out += s), setExitCode: () => undefined });
      await program.parseAsync(["audit", "query", "--store", path, "--shadow-diff", "--format", "jsonl"], { from: "user" });
      const groups = out.trim().split("\n").map((l) => JSON.parse(l) as { tool: string; rule: string; count: number; example: string });
      expect(groups.map(({ tool, rule, count }) => ({ tool, rule, count }))).toEqual([
        { tool: "read", rule: "fs", count: 2 },
        { tool: "search", rule: "tools", count: 1 },
      ]);
      out = "";
      await program.parseAsync(["audit", "query", "--store", path, "--shadow-diff"], { from: "user" });
      expect(out.split("\n")[0]).toMatch(/^tool\s+rule\s+events\s+first seq\s+last seq\s+would deny because$/);
      expect(out).toContain("does not grant read on /data/private/b");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
