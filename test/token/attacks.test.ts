/**
 * The four ways around revocation issue 13 found, each run as the attacker
 * would, each now refused. The cross-process ones (a busy verifier in another
 * process, Postgres notifications) live in two-process.test.ts and
 * postgres.test.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { authorize, check, narrow, revocable } from "../../src/kernel/capability.ts";
import { BudgetExhausted, InvalidInput, InvalidToken, Revoked } from "../../src/kernel/errors.ts";
import { defineTool } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { createTokenMint, revokeToken, toToken, verify } from "../../src/token/token.ts";
import { memorySink } from "../tools/memory-sink.ts";

const dir = mkdtempSync(join(tmpdir(), "agentcap-attacks-"));
const file = join(dir, "tokens.db");
const store = openSqliteTokenStore(file);
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});
const keys = generateKeyPair();
const publicKeys = { 1: keys.publicKey };
const mint = createTokenMint({ issuer: "app", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a", "save"] }), store });
const call = { action: "tool.call", tool: "a" } as const;

describe("revived through a token", () => {
  it("revoke, then toToken: refused", () => {
    const r = revocable(mint.issue({ id: "alice" }));
    r.revoke("done");
    expect(() => toToken(r.capability)).toThrow(Revoked);
  });

  it("toToken, then revoke: the token is refused too", () => {
    const r = revocable(mint.issue({ id: "alice" }));
    const token = toToken(r.capability);
    r.revoke("done");
    expect(() => verify(token, { publicKeys, store })).toThrow(Revoked);
  });

  it("a single-use link spent in process does not work again as a token", () => {
    const once = narrow(mint.issue({ id: "alice" }), { tools: ["a"], maxUses: 1 });
    expect(authorize(once, call).allowed).toBe(true);
    expect(() => toToken(once)).toThrow(BudgetExhausted);
    const early = narrow(mint.issue({ id: "alice" }), { tools: ["a"], maxUses: 1 });
    const token = toToken(early);
    expect(authorize(early, call).allowed).toBe(true);
    expect(authorize(verify(token, { publicKeys, store }), call).allowed).toBe(false);
  });

  it("a tool handler that saves toToken(cap) during its call cannot use it after the call ends", async () => {
    let saved = "";
    const save = defineTool(
      { name: "save", description: "keeps a token of its own capability", input: z.object({}), needs: () => [{ action: "tool.call", tool: "a" }] },
      (_input, cap) => {
        saved = toToken(cap);
        return "ok";
      },
    );
    const dispatcher = createDispatcher({ tools: [save], audit: memorySink() });
    await dispatcher.call("save", {}, mint.issue({ id: "alice" }));
    expect(saved).not.toBe("");
    expect(() => verify(saved, { publicKeys, store })).toThrow(/has returned/);
  });

  it("a token revoked in the shared store does not verify against a fresh empty store", async () => {
    const token = toToken(mint.issue({ id: "alice" }));
    await revokeToken(token, { publicKeys, store, reason: "gone" });
    const empty = openSqliteTokenStore(":memory:");
    expect(() => verify(token, { publicKeys, store: empty })).toThrow(InvalidToken);
    await empty.close();
  });
});

describe("lost", () => {
  it("a reason too long to store is refused before anything is written, and nothing here pretends it is revoked", async () => {
    const token = toToken(mint.issue({ id: "bob" }));
    await expect(revokeToken(token, { publicKeys, store, reason: "x".repeat(8001) })).rejects.toThrow(InvalidInput);
    const other = openSqliteTokenStore(file);
    expect(check(verify(token, { publicKeys, store: other }), call).allowed).toBe(true);
    expect(check(verify(token, { publicKeys, store }), call).allowed).toBe(true);
    await other.close();
  });
});
