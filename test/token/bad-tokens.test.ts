import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createManualClock } from "../../src/kernel/clock.ts";
import { Expired, InvalidInput, InvalidToken, Revoked } from "../../src/kernel/errors.ts";
import { appendBlocks, extendToken, generateKeyPair, issueToken, MAX_TOKEN_BLOCKS, MAX_TOKEN_LENGTH } from "../../src/token/biscuit.ts";
import { compileBlock, encodeBlock, type BlockData } from "../../src/token/block.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { attenuate, createTokenMint, revokeToken, toToken, verify } from "../../src/token/token.ts";
import { blockFieldIndexes, joinToken, splitToken, type Field } from "./protobuf-fields.ts";
import { check, narrow, restrict, type Capability } from "../../src/index.ts";

const keys = generateKeyPair();
const other = generateKeyPair();
const clock = createManualClock(1_000_000);
const publicKeys = { 7: keys.publicKey };
const store = openSqliteTokenStore(":memory:");
const mint = createTokenMint({ store, issuer: "test", signingKey: keys.privateKey, keyId: 7, clock, policy: () => ({ tools: ["a", "b", "c"] }) });

let token4 = "";
let otherToken4 = "";
let revokedAncestorToken = "";

function fourBlocks(): string {
  return toToken(restrict(narrow(narrow(mint.issue({ id: "alice" }), { tools: ["a", "b"] }), { tools: ["a"] }), { maxUses: 5 }));
}

function swapped(token: string): string {
  const fields = splitToken(token);
  const [i, j] = blockFieldIndexes(fields) as [number, number];
  const copy = [...fields];
  [copy[i], copy[j]] = [fields[j] as Field, fields[i] as Field];
  return joinToken(copy);
}

function withoutMiddleBlock(token: string): string {
  const fields = splitToken(token);
  const middle = blockFieldIndexes(fields)[1] as number;
  return joinToken(fields.filter((_, i) => i !== middle));
}

function spliced(token: string, from: string): string {
  const fields = splitToken(token);
  const donor = splitToken(from);
  const i = blockFieldIndexes(fields)[1] as number;
  const j = blockFieldIndexes(donor)[1] as number;
  return joinToken(fields.map((f, k) => (k === i ? (donor[j] ?? f) : f)));
}

function bitFlippedSignature(token: string): string {
  // The proof (field 4) ends the token; its last bytes are the final signature.
  const bytes = Buffer.from(token, "base64url");
  bytes[bytes.length - 3] = (bytes[bytes.length - 3] as number) ^ 0x01;
  return bytes.toString("base64url");
}

/** `token` with one more block carrying `data` (made as a holder with only the public key would), checks compiled from it. */
function withBlock(token: string, data: (rootId: string) => BlockData): string {
  const rootId = verify(token, { publicKeys, store, clock }).lineage[0]?.id ?? "";
  const json = encodeBlock(data(rootId));
  const block = compileBlock(json, JSON.parse(json) as BlockData).code;
  return appendBlocks(token, new Map([[7, keys.publicKey]]), [block]);
}

beforeAll(async () => {
  token4 = fourBlocks();
  otherToken4 = fourBlocks();
  const parent = toToken(narrow(mint.issue({ id: "bob" }), { tools: ["a"] }));
  revokedAncestorToken = attenuate(parent, { tools: ["a"] }, { publicKeys });
  await revokeToken(parent, { publicKeys, store, reason: "bob left" });
});

describe("bad tokens each get their typed error", () => {
  const cases: [string, () => { token: string; keys?: Record<string, string> }, new (...args: never[]) => Error, RegExp][] = [
    ["truncated", () => ({ token: token4.slice(0, Math.floor(token4.length / 2)) }), InvalidToken, /parse or verify/],
    ["bit-flipped signature", () => ({ token: bitFlippedSignature(token4) }), InvalidToken, /parse or verify/],
    ["blocks reordered", () => ({ token: swapped(token4) }), InvalidToken, /parse or verify/],
    ["block removed from the middle", () => ({ token: withoutMiddleBlock(token4) }), InvalidToken, /parse or verify/],
    ["block from another token spliced in", () => ({ token: spliced(token4, otherToken4) }), InvalidToken, /parse or verify/],
    ["wrong root key", () => ({ token: token4, keys: { 7: other.publicKey } }), InvalidToken, /parse or verify/],
    ["unknown key id", () => ({ token: token4, keys: { 8: keys.publicKey } }), InvalidToken, /root key id 7.*known key ids: 8/],
    [
      "expired",
      () => ({ token: attenuate(toToken(mint.issue({ id: "carol" })), { tools: ["a"], expiresAt: 999_999 }, { publicKeys }) }),
      Expired,
      /expired at/,
    ],
    ["revoked ancestor", () => ({ token: revokedAncestorToken }), Revoked, /bob left/],
    ["oversized", () => ({ token: "A".repeat(MAX_TOKEN_LENGTH + 1) }), InvalidToken, /limit is/],
    ["not base64", () => ({ token: "not a token!" }), InvalidToken, /base64/],
    ["empty string", () => ({ token: "" }), InvalidToken, /empty/],
    [
      "a valid Biscuit that is not an agentcap token",
      () => ({ token: issueToken(keys.privateKey, 7, { source: 'right("read");', params: {} }, []) }),
      InvalidToken,
      /not an agentcap block/,
    ],
    [
      "checks that do not match the link data",
      () => ({
        token: issueToken(
          keys.privateKey,
          7,
          {
            source: `agentcap_block(hex:${Buffer.from(splitBlockJson(token4), "utf8").toString("hex")});`,
            params: {},
          },
          [],
        ),
      }),
      InvalidToken,
      /checks are not the ones compiled/,
    ],
    [
      "a block whose only fact is a string printing like the link data followed by a check",
      () => ({
        token: appendBlocks(toToken(mint.issue({ id: "dan" })), new Map([[7, keys.publicKey]]), [
          { source: "agentcap_block({j});", params: { j: `${encodeBlock({ v: 1, kind: "narrow", id: "x-3", grant: { tools: ["a"] } })}");\ncheck if tool("a` } },
        ]),
      }),
      InvalidToken,
      /double quote/,
    ],
    [
      "a block whose checks are merged into one string, printing like the real ones",
      () => ({
        token: appendBlocks(toToken(mint.issue({ id: "dan" })), new Map([[7, keys.publicKey]]), [
          {
            source: `agentcap_block(hex:${Buffer.from(encodeBlock({ v: 1, kind: "narrow", id: "x-4", grant: { tools: ["a", "b"] } })).toString("hex")});\ncheck if tool({s});`,
            params: { s: 'a") or tool("b' },
          },
        ]),
      }),
      InvalidToken,
      /double quote/,
    ],
    [
      "an appended block repeating the root's link id",
      () => ({ token: withBlock(toToken(mint.issue({ id: "dan" })), (rootId) => ({ v: 1, kind: "narrow", id: rootId, grant: { tools: ["a"] } })) }),
      InvalidToken,
      /repeats the link id/,
    ],
    [
      "an appended block labelling itself with another session",
      () => ({ token: withBlock(toToken(mint.issue({ id: "dan" })), () => ({ v: 1, kind: "revocable", id: "x-1", labels: { session: "sess-of-alice-42" } })) }),
      InvalidToken,
      /labels\.session.*reserved/,
    ],
    [
      "an appended block with an empty label",
      () => ({ token: withBlock(toToken(mint.issue({ id: "dan" })), () => ({ v: 1, kind: "revocable", id: "x-2", labels: { purpose: "" } })) }),
      InvalidToken,
      /labels\.purpose/,
    ],
  ];

  it.each(cases)("%s", (_name, make, type, message) => {
    const { token, keys: k } = make();
    let thrown: unknown;
    try {
      verify(token, { publicKeys: k ?? publicKeys, store, clock });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(type);
    expect((thrown as Error).message).toMatch(message);
  });

  it(`a token holds at most MAX_TOKEN_BLOCKS (${MAX_TOKEN_BLOCKS}) blocks: one at the limit verifies, attenuating it further is refused`, () => {
    let token = toToken(mint.issue({ id: "deep" }));
    for (let i = 1; i < MAX_TOKEN_BLOCKS; i++) token = attenuate(token, { tools: ["a"] }, { publicKeys });
    expect(check(verify(token, { publicKeys, store, clock }), { action: "tool.call", tool: "a" }).allowed).toBe(true);
    expect(() => attenuate(token, { tools: ["a"] }, { publicKeys })).toThrow(new RegExp(`${MAX_TOKEN_BLOCKS + 1} blocks; the limit is ${MAX_TOKEN_BLOCKS}`));
    expect(() => attenuate(token, { tools: ["a"] }, { publicKeys })).toThrow(InvalidToken);
  }, 60_000);

  it(`the verifier refuses a token of more than MAX_TOKEN_BLOCKS (${MAX_TOKEN_BLOCKS}) blocks, as another Biscuit implementation could make`, () => {
    // Every agentcap path that makes tokens refuses the 65th block, so the last one is appended below their checks.
    let cap: Capability = mint.issue({ id: "deeper" });
    for (let i = 1; i < MAX_TOKEN_BLOCKS; i++) cap = narrow(cap, { tools: ["a"] });
    const full = toToken(cap);
    const json = encodeBlock({ v: 1, kind: "narrow", id: "one-too-many", grant: { tools: ["a"] } });
    const token = extendToken(full, new Map([[7, keys.publicKey]]), compileBlock(json, JSON.parse(json) as BlockData).code).token;
    let thrown: unknown;
    try {
      verify(token, { publicKeys, store, clock });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(InvalidToken);
    expect((thrown as InvalidToken).code).toBe("ERR_INVALID_TOKEN");
    expect((thrown as Error).message).toBe(`token has ${MAX_TOKEN_BLOCKS + 1} blocks; the limit is ${MAX_TOKEN_BLOCKS}`);
  }, 60_000);

  it(`toToken refuses a capability whose chain is longer than a token may be (${MAX_TOKEN_BLOCKS} links)`, () => {
    let cap: Capability = mint.issue({ id: "deepest" });
    for (let i = 1; i <= MAX_TOKEN_BLOCKS; i++) cap = narrow(cap, { tools: ["a"] });
    expect(() => toToken(cap)).toThrow(InvalidInput);
    expect(() => toToken(cap)).toThrow(`this capability's chain has ${MAX_TOKEN_BLOCKS + 1} links; a token holds at most ${MAX_TOKEN_BLOCKS}, one block per link`);
  });

  it("a sealed token verifies but cannot be attenuated", () => {
    const sealed = toToken(narrow(mint.issue({ id: "dave" }), { tools: ["a"] }), { seal: true });
    expect(check(verify(sealed, { publicKeys, store, clock }), { action: "tool.call", tool: "a" }).allowed).toBe(true);
    expect(() => attenuate(sealed, { tools: ["a"] }, { publicKeys })).toThrow(/sealed/);
  });

  it("random strings and random bytes give InvalidToken and nothing else", () => {
    const onlyInvalidToken = (token: string) => {
      try {
        verify(token, { publicKeys, store, clock });
      } catch (e) {
        if (!(e instanceof InvalidToken)) throw e;
      }
    };
    fc.assert(fc.property(fc.string({ maxLength: 300 }), onlyInvalidToken), { numRuns: 300 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => { onlyInvalidToken(Buffer.from(b).toString("base64url")); }), { numRuns: 300 });
    const bytes = Buffer.from(token4, "base64url");
    fc.assert(
      fc.property(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, mask) => {
        const copy = Buffer.from(bytes);
        copy[at] = (copy[at] as number) ^ mask;
        onlyInvalidToken(copy.toString("base64url"));
      }),
      { numRuns: 200 },
    );
  });
});

/** The link JSON of a real authority block, to pair with checks it does not compile to. */
function splitBlockJson(token: string): string {
  const cap = verify(token, { publicKeys, store, clock });
  const root = cap.lineage[0] as (typeof cap.lineage)[number];
  // A block never carries the mint's id: verifiers derive it from the key.
  const { principal, tenants, roles, requestId, issuedAt, issuer } = cap.mint;
  const mint = { principal, tenants, roles, requestId, issuedAt, issuer };
  return JSON.stringify({ grant: root.grant, id: root.id, keyId: 7, kind: "root", mint, store: store.id, v: 1 });
}

describe("strings that would print ambiguously", () => {
  it("toToken and attenuate refuse a string holding a double quote, naming it", () => {
    expect(() => toToken(narrow(mint.issue({ id: "erin" }), { tools: ['say "hi"'] }))).toThrow(/double quote/);
    expect(() => attenuate(toToken(mint.issue({ id: "erin" })), { fs: [{ path: '/srv/"x"', ops: ["read"] }] }, { publicKeys })).toThrow(/double quote/);
  });

  it("a string scope value travels as bytes, so it needs no quote in the printing", () => {
    const dbMint = createTokenMint({ store, issuer: "test", signingKey: keys.privateKey, keyId: 7, clock, policy: () => ({ db: [{ model: "C", ops: ["read"] }] }) });
    const cap = narrow(dbMint.issue({ id: "erin" }), { db: [{ model: "C", ops: ["read"], scope: { t: "42" } }] });
    const verified = verify(toToken(cap), { publicKeys, store, clock });
    expect(check(verified, { action: "db.read", model: "C", fields: [], scope: { t: "42" } }).allowed).toBe(true);
    expect(check(verified, { action: "db.read", model: "C", fields: [], scope: { t: 42 } }).allowed).toBe(false);
  });
});
