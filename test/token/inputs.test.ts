import { describe, expect, it } from "vitest";
import { createManualClock } from "../../src/kernel/clock.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { biscuitDecision } from "../../src/token/authorizer.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { attenuate, createTokenMint, toToken, verify } from "../../src/token/token.ts";
import { check, narrow } from "../../src/index.ts";

const first = generateKeyPair();
const second = generateKeyPair();
const clock = createManualClock(0);
const store = openSqliteTokenStore(":memory:");
const policy = () => ({ tools: ["a"] });
const call = { action: "tool.call", tool: "a" } as const;

describe("key rotation", () => {
  it("a verifier holding several issuer keys accepts tokens from each, by key id", () => {
    const old = toToken(createTokenMint({ store, issuer: "i", signingKey: first.privateKey, keyId: 1, clock, policy }).issue({ id: "a" }));
    const fresh = toToken(createTokenMint({ store, issuer: "i", signingKey: second.privateKey, keyId: 2, clock, policy }).issue({ id: "a" }));
    const publicKeys = new Map([
      [1, first.publicKey],
      [2, second.publicKey],
    ]);
    expect(check(verify(old, { publicKeys, store, clock }), call).allowed).toBe(true);
    expect(check(verify(fresh, { publicKeys, store, clock }), call).allowed).toBe(true);
    expect(() => verify(fresh, { publicKeys: { 1: first.publicKey }, store, clock })).toThrow(/root key id 2/);
  });
});

describe("bad arguments get InvalidInput naming the problem", () => {
  const mint = createTokenMint({ store, issuer: "i", signingKey: first.privateKey, keyId: 1, clock, policy });
  const token = toToken(mint.issue({ id: "a" }));
  const cases: [string, () => unknown, RegExp][] = [
    ["malformed signing key", () => createTokenMint({ store, issuer: "i", signingKey: "nope", keyId: 1, policy }), /ed25519-private/],
    ["key id out of range", () => createTokenMint({ store, issuer: "i", signingKey: first.privateKey, keyId: -1, policy }), /key id/],
    ["empty public key set", () => verify(token, { publicKeys: {}, store, clock }), /publicKeys is empty/],
    ["malformed public key", () => verify(token, { publicKeys: { 1: "ed25519/zz" }, store, clock }), /ed25519\/<64 hex digits>/],
    ["non-numeric key id", () => verify(token, { publicKeys: { one: first.publicKey }, store, clock }), /key id must be an integer/],
    ["lone surrogate in a grant", () => toToken(narrow(mint.issue({ id: "a" }), { tools: ["\ud800"] })), /not well-formed Unicode/],
    ["malformed grant in offline attenuation", () => attenuate(token, { tools: "a" } as never, { publicKeys: { 1: first.publicKey } }), /invalid grant/],
    ["lone surrogate in a request to the authorizer", () => biscuitDecision(token, { publicKeys: { 1: first.publicKey }, clock }, { action: "tool.call", tool: "\udc00" }), /not well-formed Unicode/],
  ];
  it.each(cases)("%s", (_name, run, message) => {
    expect(run).toThrow(InvalidInput);
    expect(run).toThrow(message);
  });
});
