import { describe, expect, it } from "vitest";
import { restrict } from "../../src/kernel/capability.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { attenuate, createTokenMint, toToken } from "../../src/token/token.ts";

describe("windowed rates and tokens", () => {
  it("a link with rates never becomes a token, since each verification would count afresh", async () => {
    const keys = generateKeyPair();
    const store = openSqliteTokenStore(":memory:");
    const mint = createTokenMint({ store, issuer: "t", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }) });
    const cap = mint.issue({ id: "alice", tenants: [] });
    expect(() => toToken(restrict(cap, { rates: [{ per: 60, calls: 1 }] }))).toThrow(/windowed rates .* cannot travel in a token/);
    const token = toToken(cap);
    expect(() => attenuate(token, { tools: ["a"], rates: [{ per: 60, calls: 1 }] }, { publicKeys: { 1: keys.publicKey } })).toThrow(InvalidInput);
    const limited = createTokenMint({ store, issuer: "t", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"], rates: [{ per: 60, calls: 1 }] }) });
    expect(() => toToken(limited.issue({ id: "bob", tenants: [] }))).toThrow(InvalidInput);
    await store.close();
  });
});
