import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { authorize, caretaker, check, narrow, revocable } from "../../src/kernel/capability.ts";
import { createManualClock } from "../../src/kernel/clock.ts";
import { BudgetExhausted, Expired, InvalidInput, Revoked } from "../../src/kernel/errors.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { attenuate, createTokenMint, createVerifier, inspectVerified, revokeToken, toToken, verify } from "../../src/token/token.ts";

const dir = mkdtempSync(join(tmpdir(), "agentcap-token-"));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const keys = generateKeyPair();
const clock = createManualClock(1_000_000);
const publicKeys = { 1: keys.publicKey };
const shared = join(dir, "tokens.db");
const mintStore = openSqliteTokenStore(shared);
afterAll(() => mintStore.close());
const mint = createTokenMint({ issuer: "test", signingKey: keys.privateKey, keyId: 1, clock, policy: () => ({ tools: ["a", "b"] }), store: mintStore });
const call = { action: "tool.call", tool: "a" } as const;

describe("revocation store (SQLite)", () => {
  it("a busy verifier refuses at its first decision after another connection commits a revocation, whatever its wall clock says", async () => {
    const file = shared;
    const token = toToken(narrow(mint.issue({ id: "alice" }), { tools: ["a"] }));
    const verifierStore = openSqliteTokenStore(file);
    const revokerStore = openSqliteTokenStore(file);
    const live = verify(token, { publicKeys, store: verifierStore, clock });
    const realNow = Date.now;
    try {
      for (let i = 0; i < 1000; i++) expect(check(live, call).allowed).toBe(true);
      Date.now = () => realNow() - 3_600_000;
      await revokeToken(token, { publicKeys, store: revokerStore, reason: "left" });
      expect(check(live, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
      expect(() => verify(token, { publicKeys, store: verifierStore, clock })).toThrow(/left/);
    } finally {
      Date.now = realNow;
      await verifierStore.close();
      await revokerStore.close();
    }
  });

  it("an expired token stays expired when the Date global is moved back", async () => {
    const store = openSqliteTokenStore(shared);
    const root = createTokenMint({ issuer: "test", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }), store }).issue({ id: "alice" });
    const token = toToken(narrow(root, { tools: ["a"], expiresAt: Date.now() + 50 }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const realNow = Date.now;
    try {
      Date.now = () => realNow() - 3_600_000;
      expect(() => verify(token, { publicKeys, store })).toThrow(/expired/);
    } finally {
      Date.now = realNow;
    }
  });

  it("refuses a reason that is not a string or over 1000 characters, with InvalidInput, storing nothing", async () => {
    const store = openSqliteTokenStore(shared);
    const token = toToken(narrow(mint.issue({ id: "alice" }), { tools: ["a"] }));
    await expect(revokeToken(token, { publicKeys, store, reason: "x".repeat(1001) })).rejects.toThrow(InvalidInput);
    await expect(store.revoke({ capabilityId: "abc" }, { reason: 42 as unknown as string })).rejects.toThrow(/must be a string/);
    expect(check(verify(token, { publicKeys, store, clock }), call).allowed).toBe(true);
    await store.close();
  });

  it("revoking a token revokes it and what was derived from it, not its parent; it survives a restart", async () => {
    const file = shared;
    const parent = toToken(narrow(mint.issue({ id: "alice" }), { tools: ["a"] }));
    const child = attenuate(parent, { tools: ["a"] }, { publicKeys });
    const grandchild = attenuate(child, { tools: ["a"] }, { publicKeys });
    const store = openSqliteTokenStore(file);
    const live = verify(grandchild, { publicKeys, store, clock });
    await revokeToken(child, { publicKeys, store, reason: "task done" });
    expect(check(live, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED", link: 2 });
    expect(check(verify(parent, { publicKeys, store, clock }), call).allowed).toBe(true);
    await store.close();
    const reopened = openSqliteTokenStore(file);
    expect(() => verify(grandchild, { publicKeys, store: reopened, clock })).toThrow(/task done/);
    await reopened.close();
  });

  it("revokes by block revocation id and by any ancestor capability id, also a link made in-process before serializing", async () => {
    const store = openSqliteTokenStore(shared);
    const root = mint.issue({ id: "bob" });
    const forwarder = caretaker(root, { purpose: "t1", task: "reserved, stays here" }).capability;
    const token = toToken(narrow(forwarder, { tools: ["a"] }));
    const cap = verify(token, { publicKeys, store, clock });
    expect(cap.lineage[1]?.labels).toEqual({ purpose: "t1" });
    await store.revoke({ capabilityId: forwarder.id }, { reason: "caretaker" });
    expect(check(cap, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED", link: 1, linkId: forwarder.id });

    const other = toToken(narrow(mint.issue({ id: "bob" }), { tools: ["b"] }));
    const otherCap = verify(other, { publicKeys, store, clock });
    const { revocationId } = inspectVerified(other, { publicKeys, store, clock })[0] ?? { revocationId: "" };
    await store.revoke({ revocationId }, { reason: "root key compromised" });
    expect(check(otherCap, { action: "tool.call", tool: "b" })).toMatchObject({ allowed: false, code: "ERR_REVOKED", link: 0 });
    await expect(store.revoke({ capabilityId: "not an id!" })).rejects.toThrow(InvalidInput);
    await store.close();
  });

  it("a second store on the same file sees a revocation (another process's view)", async () => {
    const file = shared;
    const a = openSqliteTokenStore(file);
    const b = openSqliteTokenStore(file);
    const token = toToken(narrow(mint.issue({ id: "carol" }), { tools: ["a"] }));
    const capB = verify(token, { publicKeys, store: b, clock });
    expect(check(capB, call).allowed).toBe(true);
    await revokeToken(token, { publicKeys, store: a });
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(check(capB, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    await a.close();
    await b.close();
  });

  it("uses and budgets are kept per block in the store and charged up the chain, across verifications and stores", async () => {
    const file = shared;
    const a = openSqliteTokenStore(file);
    const b = openSqliteTokenStore(file);
    const parentCap = narrow(mint.issue({ id: "dan" }), { tools: ["a", "b"], maxUses: 3 });
    const parent = toToken(parentCap);
    expect(toToken(parentCap)).toBe(parent);
    const child = attenuate(parent, { tools: ["a"], budget: { cost: 10 } }, { publicKeys });
    const inA = verify(child, { publicKeys, store: a, clock });
    const inB = verify(child, { publicKeys, store: b, clock });
    expect(authorize(inA, call, { cost: 4 }).allowed).toBe(true);
    expect(authorize(inB, call, { cost: 4 }).allowed).toBe(true);
    expect(authorize(inA, call, { cost: 4 })).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED", link: 2, rule: "budget.cost" });
    // The parent block has one use left, whoever spends it.
    const parentInB = verify(parent, { publicKeys, store: b, clock });
    expect(authorize(parentInB, { action: "tool.call", tool: "b" }).allowed).toBe(true);
    expect(authorize(inA, call, { cost: 1 })).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED", link: 1, rule: "maxUses" });
    await a.close();
    await b.close();
  });

  it("a caching verifier returns the same capability and still sees revocations", async () => {
    const store = openSqliteTokenStore(shared);
    const verifier = createVerifier({ publicKeys, store, clock, cacheSize: 2 });
    const token = toToken(narrow(mint.issue({ id: "erin" }), { tools: ["a"] }));
    const first = verifier.verify(token);
    expect(verifier.verify(token)).toBe(first);
    await revokeToken(token, { publicKeys, store });
    expect(check(verifier.verify(token), call).allowed).toBe(false);
    await store.close();
  });

  it("toToken of a verified capability extends its token with the links added in-process", () => {
    const store = openSqliteTokenStore(shared);
    const token = toToken(narrow(mint.issue({ id: "fay" }), { tools: ["a", "b"] }));
    const cap = verify(token, { publicKeys, store, clock });
    expect(toToken(cap)).toBe(token);
    const narrower = narrow(cap, { tools: ["b"] });
    const again = verify(toToken(narrower), { publicKeys, store, clock });
    expect(again.lineage.map((l) => l.id)).toEqual(narrower.lineage.map((l) => l.id));
    expect(check(again, call).allowed).toBe(false);
    const plainRoot = createMint({ issuer: "plain", policy: () => ({ tools: ["a"] }) }).issue({ id: "x" });
    expect(() => toToken(plainRoot)).toThrow(/signing key/);
  });

  it("toToken refuses a chain that is revoked, expired or spent, also after a token was made from it", () => {
    const root = mint.issue({ id: "gus" });
    const forwarder = revocable(narrow(root, { tools: ["a"] }));
    const before = toToken(forwarder.capability);
    forwarder.revoke("task over");
    expect(() => toToken(forwarder.capability)).toThrow(Revoked);
    expect(() => toToken(narrow(forwarder.capability, { tools: ["a"] }))).toThrow(/task over/);
    expect(before).toMatch(/^[A-Za-z0-9_-]+={0,2}$/);

    const once = narrow(root, { tools: ["a"], maxUses: 1 });
    expect(authorize(once, call).allowed).toBe(true);
    expect(() => toToken(once)).toThrow(BudgetExhausted);

    const brief = narrow(root, { tools: ["a"], expiresAt: clock.now() + 10 });
    clock.advance(10);
    expect(() => toToken(brief)).toThrow(Expired);
  });
});
