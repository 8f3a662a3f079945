import { generateKeyPairSync, sign, verify as ed25519Verify } from "node:crypto";
import { createManualClock } from "../src/kernel/clock.ts";
import type { Capability } from "../src/kernel/capability.ts";
import type { Grant } from "../src/kernel/grant.ts";
import type { Request } from "../src/kernel/request.ts";
import { authorizeToken, generateKeyPair } from "../src/token/biscuit.ts";
import { requestFacts } from "../src/token/compile.ts";
import { checkRequest } from "../src/kernel/request.ts";
import { openSqliteTokenStore } from "../src/token/sqlite-store.ts";
import { attenuate, createTokenMint, createVerifier, toToken, verify } from "../src/token/token.ts";
import { measure, report, type Measurement } from "./harness.ts";
import { check, narrow } from "../src/index.ts";

const grant: Grant = {
  tools: ["read_file", "search"],
  fs: [{ path: "/srv/data", ops: ["read", "list"] }],
  http: [{ origin: "https://api.example.com", methods: ["GET"], pathPrefix: "/v1/" }],
  db: [{ model: "Customer", ops: ["read"], scope: { tenantId: 42 } }],
};

/** Tokens: mint, offline attenuation and first verification at 1, 4 and 16 blocks, and checks on a verified token, against a raw Ed25519 verify. */
export async function runTokenBench(): Promise<void> {
  const keys = generateKeyPair();
  const publicKeys = { 1: keys.publicKey };
  const clock = createManualClock(0);
  const store = openSqliteTokenStore(":memory:");
  const mint = createTokenMint({ issuer: "bench", signingKey: keys.privateKey, keyId: 1, clock, policy: () => grant, store });

  const raw = generateKeyPairSync("ed25519");
  const message = Buffer.alloc(200, 7);
  const signature = sign(null, message, raw.privateKey);
  const baseline = measure("node:crypto Ed25519 verify, 200 bytes (baseline)", () => ed25519Verify(null, message, raw.publicKey, signature), 2_000);

  const chainOf = (blocks: number): Capability => {
    let cap: Capability = mint.issue({ id: "bench-user" });
    for (let i = 1; i < blocks; i++) cap = narrow(cap, grant);
    return cap;
  };
  const tokens = new Map([1, 4, 16].map((n) => [n, toToken(chainOf(n))]));

  const rows: Measurement[] = [measure("mint (issue a root and sign its token)", () => toToken(mint.issue({ id: "bench-user" })), 20)];
  for (const [blocks, token] of tokens) {
    const iterations = blocks === 16 ? 3 : 10;
    rows.push(measure(`attenuate offline, ${blocks} → ${blocks + 1} blocks`, () => attenuate(token, { tools: ["search"] }, { publicKeys }), iterations));
    rows.push(measure(`first verify, ${blocks} block${blocks === 1 ? "" : "s"} (parse, signatures, revocation)`, () => verify(token, { publicKeys, store, clock }), iterations));
  }
  const token4 = tokens.get(4) ?? "";
  const verified = verify(token4, { publicKeys, store, clock });
  const request: Request = { action: "fs.read", path: "/srv/data/reports/q3.csv" };
  rows.push(measure("check on a verified 4-block token (live session)", () => check(verified, request), 200_000));
  const verifier = createVerifier({ publicKeys, store, clock });
  verifier.verify(token4);
  rows.push(measure("cached verifier: same token again, then check", () => check(verifier.verify(token4), request), 200_000));
  report("tokens (Biscuit v3 via biscuit-wasm)", baseline, rows);

  // A token's first verification (and one decision on it) against what biscuit-wasm alone does with the same token: parse, check signatures, authorize.
  const keyMap = new Map([[1, keys.publicKey]]);
  for (const [blocks, token] of tokens) {
    if (blocks === 16) continue;
    const facts = requestFacts(checkRequest(request), 0);
    const raw = measure(`biscuit-wasm parse + verify + authorize, ${blocks} block${blocks === 1 ? "" : "s"} (baseline)`, () => authorizeToken(token, keyMap, facts), 20);
    const ours = measure(`agentcap first verify + check, ${blocks} block${blocks === 1 ? "" : "s"}`, () => check(verify(token, { publicKeys, store, clock }), request), 20);
    report(`first verification against the raw library, ${blocks} block${blocks === 1 ? "" : "s"} (target ≤ 1.20)`, raw, [ours]);
  }
  await store.close();
}
