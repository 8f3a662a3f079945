import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { authorize, check, narrow, revocable, revocationSignal, type Capability } from "../../src/kernel/capability.ts";
import { createManualClock, systemClock } from "../../src/kernel/clock.ts";
import { caretaker } from "../../src/kernel/internal.ts";
import { CapabilityDenied, InvalidInput, InvalidToken, Revoked } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { openAuditStore } from "../../src/audit/open.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { REVOCATION_KEPT_AFTER_EXPIRY_MS } from "../../src/token/store.ts";
import { createTokenMint, createVerifier, inspectVerified, revokeToken, toToken, verify } from "../../src/token/token.ts";

const dir = mkdtempSync(join(tmpdir(), "agentcap-revoke-who-"));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const keys = generateKeyPair();
const publicKeys = { 1: keys.publicKey };
const call = { action: "tool.call", tool: "a" } as const;
const policy = () => ({ tools: ["a", "b"] });

function setup(name: string) {
  const file = join(dir, `${name}.db`);
  const store = openSqliteTokenStore(file);
  const mint = createTokenMint({ issuer: "test", signingKey: keys.privateKey, keyId: 1, policy, store });
  return { file, store, mint };
}

describe("revoking by who", () => {
  it("a principal: its capabilities here, its tokens everywhere, and its next mint are refused until reinstated; nothing old comes back", async () => {
    const { file, store, mint } = setup("principal");
    const other = openSqliteTokenStore(file);
    const alice = mint.issue({ id: "alice" });
    const child = narrow(alice, { tools: ["a"] });
    const token = toToken(child);
    const elsewhere = verify(token, { publicKeys, store: other });
    const bob = mint.issue({ id: "bob" });
    expect(check(child, call).allowed).toBe(true);

    const report = await store.revoke({ principal: "alice" }, { reason: "left the company" });
    expect(report).toMatchObject({ kind: "principal", id: "alice", reason: "left the company", reached: { capabilities: 1, tokens: 0, sessions: 0 } });
    expect(check(child, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED", link: 0 });
    const denied = check(child, call);
    expect(denied.allowed ? "" : denied.reason).toMatch(/principal alice: left the company/);
    expect(check(elsewhere, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    expect(() => verify(token, { publicKeys, store: other })).toThrow(/left the company/);
    expect(() => mint.issue({ id: "alice" })).toThrow(Revoked);
    expect(() => mint.issue({ id: "alice" })).toThrow(/reinstate/);
    expect(check(bob, call).allowed).toBe(true);

    await store.reinstate({ principal: "alice" });
    await new Promise((resolve) => setTimeout(resolve, 2));
    const again = mint.issue({ id: "alice" });
    expect(check(again, call).allowed).toBe(true);
    expect(check(child, call).allowed).toBe(false);
    expect(() => verify(token, { publicKeys, store: other })).toThrow(Revoked);
    await expect(store.reinstate({ capabilityId: alice.id } as never)).rejects.toThrow(/only a principal, tenant or role/);
    await other.close();
    await store.close();
  });

  it("a tenant and a role refuse what was minted with them, and a plain kernel mint bound to the store too", async () => {
    const { store } = setup("tenant-role");
    const mint = createMint({ issuer: "app", policy, revocations: store });
    const acme = mint.issue({ id: "carol", tenants: ["acme"] });
    const admin = mint.issue({ id: "dan", roles: ["admin"] });
    const plain = mint.issue({ id: "erin", tenants: ["other"], roles: ["user"] });
    await store.revoke({ tenant: "acme" }, { reason: "contract ended" });
    await store.revoke({ role: "admin" }, { reason: "role retired" });
    expect(check(acme, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    expect(check(admin, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    expect(check(plain, call).allowed).toBe(true);
    expect(() => mint.issue({ id: "fay", tenants: ["acme"] })).toThrow(/tenant acme is revoked/);
    expect(() => mint.issue({ id: "fay", roles: ["admin"] })).toThrow(/role admin is revoked/);
    await store.close();
  });

  it("a session label refuses every chain under the caretaker that carries it; a root id refuses its subtree", async () => {
    const { store, mint } = setup("session");
    const root = mint.issue({ id: "gus" });
    // As the runtime and the gateway label their sessions: through the kernel's own caretaker.
    const session = caretaker(root, { session: "s-42" }).capability;
    const deep = narrow(narrow(session, { tools: ["a"] }), { tools: ["a"] });
    const sibling = caretaker(root, { session: "s-43" }).capability;
    await store.revoke({ session: "s-42" }, { reason: "logged out" });
    expect(check(deep, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED", link: 1 });
    expect(check(sibling, call).allowed).toBe(true);
    await store.revoke({ capabilityId: root.id }, { reason: "whole tree" });
    expect(check(sibling, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED", link: 0 });
    await store.close();
  });

  it("an issuer key id: everything it signed stops, and the key is refused from then on", async () => {
    const { store, mint } = setup("key");
    const token = toToken(mint.issue({ id: "hank" }));
    const verifier = createVerifier({ publicKeys, store });
    const live = verifier.verify(token);
    const inProcess = mint.issue({ id: "ivy" });
    await store.revoke({ keyId: 1 }, { reason: "key leaked" });
    expect(check(live, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    expect(check(inProcess, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    expect(() => verifier.verify(token)).not.toThrow();
    expect(check(verifier.verify(token), call).allowed).toBe(false);
    expect(() => verify(token, { publicKeys, store })).toThrow(/root key id 1: key leaked/);
    expect(() => mint.issue({ id: "jo" })).toThrow(/root key id 1 is revoked/);
    await store.close();
  });

  it("work in flight observing revocationSignal is aborted as soon as the principal is revoked", async () => {
    const { store, mint } = setup("signal");
    const cap = narrow(mint.issue({ id: "kim" }), { tools: ["a"] });
    const { signal, dispose } = revocationSignal(cap);
    expect(signal.aborted).toBe(false);
    await store.revoke({ principal: "kim" }, { reason: "gone" });
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(Revoked);
    dispose();
    await store.close();
  });

  it("another process's revocation reaches a waiting signal without any decision being made here", async () => {
    const { file, store, mint } = setup("signal-remote");
    const other = openSqliteTokenStore(file, { watchIntervalMs: 5 });
    const cap = verify(toToken(mint.issue({ id: "lee" })), { publicKeys, store: other });
    const { signal, dispose } = revocationSignal(cap);
    const aborted = new Promise((resolve) => {
      signal.addEventListener("abort", resolve, { once: true });
    });
    await store.revoke({ principal: "lee" }, { reason: "gone" });
    await aborted;
    expect(signal.reason).toBeInstanceOf(Revoked);
    dispose();
    await other.close();
    await store.close();
  });

  it("watched sessions close once, with the reason, when what they hold is revoked; reports count them", async () => {
    const { store, mint } = setup("sessions");
    const a = mint.issue({ id: "max" });
    const closed: string[] = [];
    store.watchSession(a, (reason) => {
      closed.push(reason);
    });
    store.watchSession(mint.issue({ id: "ned" }), (reason) => {
      closed.push(`ned: ${reason}`);
    });
    const report = await store.revoke({ principal: "max" }, { reason: "fired" });
    expect(report.reached.sessions).toBe(1);
    expect(closed).toEqual([expect.stringMatching(/fired/)]);
    await store.close();
  });

  it("bad targets get InvalidInput naming the problem", async () => {
    const { store } = setup("bad");
    for (const target of [{}, { principal: "" }, { keyId: -1 }, { keyId: 1.5 }, { tenant: "x".repeat(257) }, { principal: "a", role: "b" }, null]) {
      await expect(store.revoke(target as never)).rejects.toThrow(InvalidInput);
    }
    await store.close();
  });

  it("the list drops an entry a day after everything it refuses has expired, and the store reports its size", async () => {
    const { store } = setup("prune");
    // Expired just under a day ago: dropped 400 ms from now (a clock ahead by less than a day cannot drop a revocation still needed elsewhere).
    await store.revoke({ principal: "ola" }, { reason: "short", expiresAt: systemClock.now() - REVOCATION_KEPT_AFTER_EXPIRY_MS + 400 });
    await store.revoke({ principal: "pat" }, { reason: "stays" });
    expect(store.stats().revocations).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 420));
    await store.revoke({ principal: "quin" }, { reason: "another" });
    expect(store.stats().revocations).toBe(2);
    expect((await store.list()).map((e) => e.id).sort()).toEqual(["pat", "quin"]);
    await store.close();
  });
});

describe("who may revoke, and the audit log", () => {
  it("revoke needs a capability with a revoke grant when the store audits; each revocation is an event naming who, what, why and what it reached", async () => {
    const audit = await openAuditStore({ kind: "sqlite", path: ":memory:" });
    const store = openSqliteTokenStore(join(dir, "audited.db"), { audit });
    const mint = createTokenMint({ issuer: "test", signingKey: keys.privateKey, keyId: 1, policy: (p) => (p.id === "root-admin" ? { revoke: [{ target: "principal" }, { target: "session", ids: ["s-1"] }] } : { tools: ["a"] }), store });
    const admin = mint.issue({ id: "root-admin" });
    const helpdesk = narrow(admin, { revoke: [{ target: "session", ids: ["s-1"] }] });
    const user = mint.issue({ id: "rae" });

    await expect(store.revoke({ principal: "rae" }, { reason: "no who" })).rejects.toThrow(/needs \{ by \}/);
    await expect(store.revoke({ principal: "rae" }, { reason: "helpdesk overreach", by: helpdesk })).rejects.toThrow(CapabilityDenied);
    expect(check(user, call).allowed).toBe(true);
    await expect(store.revoke({ session: "s-2" }, { by: admin })).rejects.toThrow(/does not grant revoking session "s-2"/);
    const report = await store.revoke({ principal: "rae" }, { reason: "left the company", by: admin });
    expect(report.reached.capabilities).toBe(1);
    expect(check(user, call).allowed).toBe(false);
    // A holder may give up its own link without any grant.
    const own = narrow(mint.issue({ id: "sam" }), { tools: ["a"] });
    await store.revoke({ capabilityId: own.id }, { by: own, reason: "done with it" });
    expect(check(own, call).allowed).toBe(false);

    const records = await audit.query({ action: "revoke" });
    const events = records.map((r) => r.event);
    expect(events.map((e) => [e.kind, e.subject.mint.principal, e.request, e.decision.allowed])).toEqual([
      ["revocation", "root-admin", { action: "revoke", target: "principal", id: "rae" }, false],
      ["revocation", "root-admin", { action: "revoke", target: "session", id: "s-2" }, false],
      ["revocation", "root-admin", { action: "revoke", target: "principal", id: "rae" }, true],
      ["revocation", "sam", { action: "revoke", target: "link", id: own.id }, true],
    ]);
    expect(events[2]?.outcome).toEqual({ ok: true, resultBytes: null, reason: "left the company", reached: { capabilities: 1, tokens: 0, sessions: 0 } });
    await store.close();
    await audit.close();
  });

  it("the revoke grant narrows like every other grant", () => {
    const store = openSqliteTokenStore(":memory:");
    const mint = createMint({ issuer: "app", policy: () => ({ revoke: [{ target: "principal", ids: ["a", "b"] }, { target: "key" }] }), revocations: store });
    const root = mint.issue({ id: "admin" });
    const onlyA = narrow(root, { revoke: [{ target: "principal", ids: ["a"] }] });
    const widened = narrow(onlyA, { revoke: [{ target: "principal" }, { target: "session" }] });
    const allowed = (cap: Capability, target: "principal" | "session" | "key", id: string) => check(cap, { action: "revoke", target, id }).allowed;
    expect([allowed(root, "principal", "a"), allowed(root, "principal", "b"), allowed(root, "principal", "c"), allowed(root, "key", "7")]).toEqual([true, true, false, true]);
    expect([allowed(onlyA, "principal", "a"), allowed(onlyA, "principal", "b"), allowed(onlyA, "key", "7")]).toEqual([true, false, false]);
    expect([allowed(widened, "principal", "b"), allowed(widened, "session", "s")]).toEqual([false, false]);
  });
});

describe("nothing revived", () => {
  it("revoking an in-process caretaker after toToken revokes the token too, here and against another connection", async () => {
    const { file, store, mint } = setup("revived-revocable");
    const other = openSqliteTokenStore(file);
    const forwarder = revocable(narrow(mint.issue({ id: "tess" }), { tools: ["a"] }));
    const token = toToken(forwarder.capability);
    const elsewhere = verify(token, { publicKeys, store: other });
    expect(check(elsewhere, call).allowed).toBe(true);
    forwarder.revoke("task over");
    expect(check(elsewhere, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    expect(() => verify(token, { publicKeys, store: other })).toThrow(/task over/);
    await other.close();
    await store.close();
  });

  it("a single-use link spent in process is spent for its tokens, and one spent through a token is spent here", async () => {
    const { store, mint } = setup("revived-limited");
    const once = narrow(mint.issue({ id: "uma" }), { tools: ["a"], maxUses: 1 });
    const token = toToken(once);
    expect(authorize(once, call).allowed).toBe(true);
    expect(authorize(verify(token, { publicKeys, store }), call)).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });

    const twice = narrow(mint.issue({ id: "uma" }), { tools: ["a"], maxUses: 1 });
    const viaToken = verify(toToken(twice), { publicKeys, store });
    expect(authorize(viaToken, call).allowed).toBe(true);
    expect(authorize(twice, call)).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });
    // The same link keeps one account (its block keeps its revocation id), whichever token carries it.
    const three = narrow(mint.issue({ id: "uma" }), { tools: ["a"], maxUses: 3 });
    const direct = toToken(three);
    const derived = toToken(narrow(three, { tools: ["a"] }));
    expect(inspectVerified(derived, { publicKeys, store })[1]?.revocationId).toBe(inspectVerified(direct, { publicKeys, store })[1]?.revocationId);
    expect(authorize(verify(derived, { publicKeys, store }), call).allowed).toBe(true);
    expect(authorize(verify(direct, { publicKeys, store }), call).allowed).toBe(true);
    expect(authorize(three, call).allowed).toBe(true);
    expect(authorize(three, call)).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });
    await store.close();
  });

  it("a limited link already used in process cannot become a token", async () => {
    const { store, mint } = setup("used-limited");
    const three = narrow(mint.issue({ id: "vic" }), { tools: ["a"], maxUses: 3 });
    expect(authorize(three, call).allowed).toBe(true);
    expect(() => toToken(three)).toThrow(InvalidInput);
    expect(() => toToken(three)).toThrow(/already used in this process/);
    await store.close();
  });

  it("a token revoked in the shared store does not verify against a fresh empty store", async () => {
    const { store, mint } = setup("fresh-store");
    const token = toToken(mint.issue({ id: "wes" }));
    await revokeToken(token, { publicKeys, store, reason: "gone" });
    const fresh = openSqliteTokenStore(":memory:");
    expect(() => verify(token, { publicKeys, store: fresh })).toThrow(InvalidToken);
    expect(() => verify(token, { publicKeys, store: fresh })).toThrow(/not this verifier's store/);
    await fresh.close();
    await store.close();
  });

  it("verify refuses a token minted under another store even if it was never revoked", () => {
    const a = openSqliteTokenStore(":memory:");
    const b = openSqliteTokenStore(":memory:");
    const mint = createTokenMint({ issuer: "t", signingKey: keys.privateKey, keyId: 1, policy, store: a, clock: createManualClock(0) });
    const token = toToken(mint.issue({ id: "xan" }));
    expect(check(verify(token, { publicKeys, store: a }), call).allowed).toBe(true);
    expect(() => verify(token, { publicKeys, store: b })).toThrow(/minted under token store/);
    expect(() => createTokenMint({ issuer: "t", signingKey: keys.privateKey, keyId: 1, policy } as never)).toThrow(/needs the application's token store/);
  });
});
