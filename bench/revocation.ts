/**
 * Revocation: what the per-decision freshness probe costs, and how long a
 * revocation takes to be refused by a busy verifier in another process
 * (bench/verifier-child.ts), for SQLite and, with DATABASE_URL, Postgres.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { check, narrow } from "../src/kernel/capability.ts";
import { createMint } from "../src/kernel/mint.ts";
import { generateKeyPair } from "../src/token/biscuit.ts";
import { openPostgresTokenStore } from "../src/token/postgres-store.ts";
import { openSqliteTokenStore } from "../src/token/sqlite-store.ts";
import type { TokenStore } from "../src/token/store.ts";
import { createTokenMint, revokeToken, toToken, verify } from "../src/token/token.ts";
import { measure, report } from "./harness.ts";

const keys = generateKeyPair();
const publicKeys = { 1: keys.publicKey };
const request = { action: "tool.call", tool: "a" } as const;
const REVOCATIONS = 100;

/** A decision on a verified token, against one on a capability bound to no store: the probe's cost per decision. */
function probeCost(kind: string, store: TokenStore): void {
  const plain = createMint({ issuer: "bench", policy: () => ({ tools: ["a"] }) }).issue({ id: "bench" });
  const baseline = measure("check, capability bound to no store (baseline)", () => check(plain, request), 100_000);
  const mint = createTokenMint({ issuer: "bench", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }), store });
  const verified = verify(toToken(narrow(mint.issue({ id: "bench" }), { tools: ["a"] })), { publicKeys, store });
  const bound = mint.issue({ id: "bench" });
  report(`freshness probe per decision, ${kind}`, baseline, [
    measure(`check, verified token (${kind} store consulted)`, () => check(verified, request), 100_000),
    measure(`check, in-process capability of a bound mint`, () => check(bound, request), 100_000),
  ]);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Revokes REVOCATIONS tokens one after another while a verifier in another process is busy deciding on all of them; prints the latencies. */
async function latency(kind: "sqlite" | "postgres", where: string, store: TokenStore, dir: string): Promise<void> {
  const mint = createTokenMint({ issuer: "bench", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }), store });
  const tokens = Array.from({ length: REVOCATIONS }, (_, i) => toToken(narrow(mint.issue({ id: `user-${i}` }), { tools: ["a"] })));
  const file = join(dir, `${kind}-tokens.json`);
  writeFileSync(file, JSON.stringify(tokens));
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("verifier-child.ts", import.meta.url)), kind, where, keys.publicKey, file], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const refused = new Map<number, bigint>();
  const waiting = new Map<number, () => void>();
  let ready: () => void = () => undefined;
  const isReady = new Promise<void>((resolve) => {
    ready = resolve;
  });
  createInterface({ input: child.stdout }).on("line", (line) => {
    if (line === "ready") ready();
    const m = /^denied (\d+) (\d+) (\d+)$/.exec(line);
    if (m === null) return;
    refused.set(Number(m[1]), BigInt(m[2] as string));
    waiting.get(Number(m[1]))?.();
  });
  await isReady;
  const toRefusal: number[] = [];
  const revokeCall: number[] = [];
  for (let i = 0; i < REVOCATIONS; i++) {
    await new Promise((resolve) => setTimeout(resolve, 3));
    const start = process.hrtime.bigint();
    await revokeToken(tokens[i] as string, { publicKeys, store, reason: "bench" });
    revokeCall.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (!refused.has(i)) {
      await new Promise<void>((resolve) => waiting.set(i, resolve));
    }
    toRefusal.push(Number((refused.get(i) ?? start) - start) / 1e6);
  }
  await new Promise((resolve) => child.once("exit", resolve));
  const sorted = [...toRefusal].sort((a, b) => a - b);
  const calls = [...revokeCall].sort((a, b) => a - b);
  console.log(`\nrevocation to refusal in another, busy process, ${kind} (${REVOCATIONS} revocations)`);
  console.log(`  from revoke() called to the verifier's first refusal:  p50 ${percentile(sorted, 50).toFixed(2)} ms  p99 ${percentile(sorted, 99).toFixed(2)} ms`);
  console.log(`  revoke() itself (${kind === "postgres" ? "commit, then every live store has read it" : "commit"}): p50 ${percentile(calls, 50).toFixed(2)} ms  p99 ${percentile(calls, 99).toFixed(2)} ms`);
}

export async function runRevocationBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "agentcap-bench-revocation-"));
  try {
    const file = join(dir, "tokens.db");
    const sqlite = openSqliteTokenStore(file);
    probeCost("SQLite", sqlite);
    await latency("sqlite", file, sqlite, dir);
    await sqlite.close();
    const url = process.env.DATABASE_URL;
    if (url === undefined) {
      console.log("\n(Postgres revocation bench skipped: set DATABASE_URL)");
      return;
    }
    const schema = `agentcap_bench_${randomBytes(4).toString("hex")}`;
    const postgres = await openPostgresTokenStore({ connectionString: url, schema });
    try {
      probeCost("Postgres", postgres);
      await latency("postgres", schema, postgres, dir);
    } finally {
      await postgres.close();
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
