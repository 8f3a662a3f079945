import { describe, expect, it } from "vitest";
import { createApprovals } from "../../src/kernel/approvals.ts";
import { check } from "../../src/kernel/capability.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { createTokenMint, toToken, verify } from "../../src/token/token.ts";
import { memorySink } from "../tools/memory-sink.ts";

describe("approvals and tokens", () => {
  it("a token carries the approval rules as checks, and an approval made in process never becomes a token", async () => {
    const keys = generateKeyPair();
    const store = openSqliteTokenStore(":memory:");
    const grant = { tools: ["pay"], approval: [{ tools: ["pay"], approvers: ["bob"] }] };
    const mint = createTokenMint({ store, issuer: "t", signingKey: keys.privateKey, keyId: 1, policy: () => grant });
    const alice = mint.issue({ id: "alice", tenants: [] });
    const token = toToken(alice);
    const verified = verify(token, { publicKeys: { 1: keys.publicKey }, store });
    expect(check(verified, { action: "tool.call", tool: "pay" })).toMatchObject({ code: "ERR_APPROVAL_REQUIRED", link: 0 });
    const bob = createMint({ issuer: "t", policy: () => ({}) }).issue({ id: "bob", tenants: [] });
    const approvals = createApprovals({ audit: memorySink() });
    const flow = approvals.run(verified, { action: "tool.call", tool: "pay" }, { args: {} }, (cap) => {
      expect(check(cap, { action: "tool.call", tool: "pay" }, { args: {} }).allowed).toBe(true);
      return (() => toToken(cap))();
    });
    for (let i = 0; i < 100 && (await approvals.list()).length === 0; i++) await new Promise((r) => setTimeout(r, 1));
    await approvals.approve(((await approvals.list())[0] as { id: string }).id, bob);
    const error = await flow.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInput);
    expect((error as Error).message).toMatch(/approved capability is bound to one call/);
    await store.close();
  });
});
