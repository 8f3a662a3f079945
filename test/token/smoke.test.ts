import { describe, expect, it } from "vitest";
import { createManualClock } from "../../src/kernel/clock.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { biscuitDecision } from "../../src/token/authorizer.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { attenuate, createTokenMint, toToken, verify } from "../../src/token/token.ts";
import { check, narrow } from "../../src/index.ts";

describe("smoke", () => {
  it("round trips", () => {
    const kp = generateKeyPair();
    const clock = createManualClock(1_000_000);
    const store = openSqliteTokenStore(":memory:");
    const mint = createTokenMint({ store, issuer: "t", signingKey: kp.privateKey, keyId: 1, clock, policy: () => ({ tools: ["a", "b"], fs: [{ path: "/srv", ops: ["read"] }], db: [{ model: "C", ops: ["read"], fields: ["x"], scope: { t: 42 } }], http: [{ origin: "https://a.com", methods: ["GET"], pathPrefix: "/v1" }], exec: [{ program: "/bin/ls", args: ["-l", { prefix: "/srv" }, { any: true }], cwd: "/srv" }] }) });
    const root = mint.issue({ id: "alice" });
    const cap = narrow(root, { tools: ["a"], fs: [{ path: "/srv/x", ops: ["read"] }], expiresAt: 2_000_000 });
    const token = toToken(cap);
    const publicKeys = { 1: kp.publicKey };
    const v = verify(token, { publicKeys, store, clock });
    const reqs = [
      { action: "tool.call", tool: "a" }, { action: "tool.call", tool: "b" }, { action: "fs.read", path: "/srv/x/y" }, { action: "fs.read", path: "/srv/xy" },
    ] as const;
    for (const r of reqs) {
      const k = check(cap, r).allowed;
      expect(check(v, r).allowed).toBe(k);
      expect(biscuitDecision(token, { publicKeys, clock }, r).allowed).toBe(k);
    }
    const t2 = toToken(root);
    for (const r of [
      { action: "db.read", model: "C", fields: ["x"], scope: { t: 42 } },
      { action: "db.read", model: "C", fields: [], scope: { t: 42 } },
      { action: "db.read", model: "C", fields: ["y"], scope: { t: 42 } },
      { action: "db.read", model: "C", fields: ["x"], scope: { t: "42" } },
      { action: "http.request", method: "GET", url: "https://a.com/v1/x" },
      { action: "http.request", method: "GET", url: "https://a.com/v1x" },
      { action: "http.request", method: "GET", url: "https://a.com/v1/x", address: "10.0.0.1" },
      { action: "exec", argv: ["/bin/ls", "-l", "/srv/a", "z"], cwd: "/srv/q" },
      { action: "exec", argv: ["/bin/ls", "-l", "/srv/a"], cwd: "/srv/q" },
      { action: "exec", argv: ["/bin/ls", "-l", "/srv/a", "z"], cwd: "/srv/q", env: ["HOME"] },
    ] as const) {
      const k = check(root, r).allowed;
      expect(biscuitDecision(t2, { publicKeys, clock }, r).allowed, JSON.stringify(r)).toBe(k);
      expect(check(verify(t2, { publicKeys, store, clock }), r).allowed).toBe(k);
    }
    const t3 = attenuate(token, { tools: ["b"] }, { publicKeys });
    expect(check(verify(t3, { publicKeys, store, clock }), { action: "tool.call", tool: "a" }).allowed).toBe(false);
    clock.set(3_000_000);
    expect(biscuitDecision(token, { publicKeys, clock }, reqs[0])).toEqual({ allowed: false, link: 1, rule: "expiresAt" });
  });
});
