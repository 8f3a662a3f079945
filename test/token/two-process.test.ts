/**
 * A busy verifier in another process (bench/verifier-child.ts) makes no
 * allowed decision after a revocation has committed, with either store:
 * SQLite probes the file's version at every decision; Postgres resolves
 * `revoke` only once every live store has read the revocation.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { narrow } from "../../src/kernel/capability.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openPostgresTokenStore } from "../../src/token/postgres-store.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import type { TokenStore } from "../../src/token/store.ts";
import { createTokenMint, revokeToken, toToken } from "../../src/token/token.ts";

const url = process.env.DATABASE_URL;
const dir = mkdtempSync(join(tmpdir(), "agentcap-two-process-"));
const schema = `agentcap_test_${randomBytes(6).toString("hex")}`;
const keys = generateKeyPair();
const publicKeys = { 1: keys.publicKey };
const child = fileURLToPath(new URL("../../bench/verifier-child.ts", import.meta.url));

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (url === undefined) return;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

interface Refusal {
  readonly firstRefused: bigint;
  readonly lastAllowed: bigint;
}

/** Starts the busy verifier on `tokens`; resolves once it has verified them, with a way to await each token's refusal. */
async function startVerifier(kind: "sqlite" | "postgres", where: string, tokens: readonly string[]): Promise<{ process: ChildProcess; refusal: (i: number) => Promise<Refusal> }> {
  const file = join(dir, `${randomBytes(4).toString("hex")}.json`);
  writeFileSync(file, JSON.stringify(tokens));
  const proc = spawn(process.execPath, ["--import", "tsx", child, kind, where, keys.publicKey, file], { stdio: ["pipe", "pipe", "inherit"] });
  const waiting = new Map<number, (r: Refusal) => void>();
  const seen = new Map<number, Refusal>();
  let ready: () => void = () => undefined;
  const isReady = new Promise<void>((resolve) => {
    ready = resolve;
  });
  createInterface({ input: proc.stdout }).on("line", (line) => {
    if (line === "ready") ready();
    const m = /^denied (\d+) (\d+) (\d+)$/.exec(line);
    if (m === null) return;
    const r = { firstRefused: BigInt(m[2] as string), lastAllowed: BigInt(m[3] as string) };
    seen.set(Number(m[1]), r);
    waiting.get(Number(m[1]))?.(r);
  });
  await isReady;
  return {
    process: proc,
    refusal: (i) => seen.has(i) ? Promise.resolve(seen.get(i) as Refusal) : new Promise((resolve) => waiting.set(i, resolve)),
  };
}

/** Revokes each token in turn while the verifier is busy; returns how many decisions it allowed after each revocation had committed. */
async function allowedAfterCommit(store: TokenStore, kind: "sqlite" | "postgres", where: string, count: number): Promise<number> {
  const mint = createTokenMint({ issuer: "test", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }), store });
  const tokens = Array.from({ length: count }, (_, i) => toToken(narrow(mint.issue({ id: `user-${i}` }), { tools: ["a"] })));
  const verifier = await startVerifier(kind, where, tokens);
  let late = 0;
  for (let i = 0; i < count; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    await revokeToken(tokens[i] as string, { publicKeys, store, reason: "two-process test" });
    const committed = process.hrtime.bigint();
    const r = await verifier.refusal(i);
    // Every decision that started after `revoke` returned must be a refusal.
    if (r.lastAllowed > committed) late++;
  }
  await new Promise((resolve) => verifier.process.once("exit", resolve));
  return late;
}

describe("a busy verifier in another process allows nothing once a revocation has committed", () => {
  it("SQLite", async () => {
    const file = join(dir, "tokens.db");
    const store = openSqliteTokenStore(file);
    expect(await allowedAfterCommit(store, "sqlite", file, 20)).toBe(0);
    await store.close();
  }, 60_000);

  it.skipIf(url === undefined)("Postgres", async () => {
    const store = await openPostgresTokenStore({ connectionString: url ?? "", schema });
    expect(await allowedAfterCommit(store, "postgres", schema, 20)).toBe(0);
    await store.close();
  }, 60_000);
});
