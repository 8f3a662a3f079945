import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { AuditEvent, Capability, Request } from "../src/index.ts";
import type { TokenStore } from "../src/token/index.ts";
import { kernel, lazyEntries } from "./built.ts";
import { measure, report } from "./harness.ts";

// The built package, as the kernel section measures it.
const { authorize, auditSubject, check, createManualClock, restrict } = kernel;
const audit = await lazyEntries.audit();
const token = await lazyEntries.token();

const ITER = 5_000;
const EVENTS = 5_000;
const call: Request = { action: "tool.call", tool: "search" };

/** A verified token of a capability with and without a windowed rate, and the calls that authorize each. */
async function pair(store: TokenStore, rate: { per: number; calls: number }, clock: ReturnType<typeof createManualClock> | undefined, shared: boolean) {
  const keys = token.generateKeyPair();
  const mint = token.createTokenMint({ store, issuer: "bench", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["search"] }) });
  const root = mint.issue({ id: "bench-user", tenants: [] });
  const options = { publicKeys: { 1: keys.publicKey }, store, ...(clock === undefined ? {} : { clock }) };
  const open = async (t: string): Promise<Capability> => (shared ? token.verifyShared(t, options) : token.verify(t, options));
  const plain = await open(token.toToken(root));
  const rated = await open(token.toToken(restrict(root, { rates: [{ ...rate, tools: ["search"] }] })));
  const step = () => clock?.advance(1000);
  return {
    plain: () => {
      step();
      if (!authorize(plain, call).allowed) throw new Error("bench: the plain token was refused");
    },
    rated: () => {
      step();
      if (!authorize(rated, call).allowed) throw new Error("bench: the rated token was refused");
    },
  };
}

/**
 * A windowed rate's check and charge per call, on a verified token whose
 * window lives in the token store, against the same token without the rate
 * on the same store, measured in this run. SQLite: "100 calls per minute"
 * with the capability's clock moved a second per call, so the window holds
 * what it would in steady use (60 calls), each counted in the file. Postgres:
 * a rate large enough never to refuse, so each call charges room this
 * process reserved (the reservation itself is one transaction, taken when
 * verified and again as it runs low).
 */
async function windowedRates(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), "agentcap-bench-rates-"));
  const sqlite = token.openSqliteTokenStore(path.join(dir, "tokens.db"));
  const s = await pair(sqlite, { per: 60, calls: 100 }, createManualClock(Date.UTC(2026, 0, 1)), false);
  const sqliteBase = measure("SQLite store: token without a rate (baseline)", s.plain, ITER);
  report("rates: windowed budget check per call, window in the token store", sqliteBase, [measure("SQLite store: 100 calls per minute, counted in the file", s.rated, ITER)]);
  await sqlite.close();
  rmSync(dir, { recursive: true, force: true });
  const url = process.env.DATABASE_URL ?? "";
  if (url === "") {
    console.log("  Postgres store: skipped (DATABASE_URL is unset; set it, e.g. postgres://postgres@127.0.0.1:5432/test, to measure it)");
    return;
  }
  const schema = `agentcap_bench_${String(process.pid)}`;
  const pg = await token.openPostgresTokenStore({ connectionString: url, schema });
  const p = await pair(pg, { per: 3600, calls: 1_000_000_000 }, undefined, true);
  const pgBase = measure("Postgres store: token without a rate (baseline)", p.plain, ITER * 4);
  report("", pgBase, [measure("Postgres store: rate charged from reserved room", p.rated, ITER * 4)]);
  await pg.close();
  const { default: pgDriver } = await import("pg");
  const client = new pgDriver.Client({ connectionString: url });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
}

/** Events per second through `audit export`, as JSON lines and as OTLP JSON, from a SQLite log of EVENTS events with a checkpoint covering them. */
async function exportThroughput(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), "agentcap-bench-export-"));
  const key = audit.generateCheckpointKey("bench/audit");
  const store = await audit.openAuditStore({ kind: "sqlite", path: path.join(dir, "audit.db"), checkpoints: { key: key.signerKey, sink: audit.memoryCheckpointSink(), everyEntries: 1_000_000 } });
  const mint = kernel.createMint({ issuer: "bench", policy: () => ({ tools: ["search"] }) });
  const cap = mint.issue({ id: "bench-user" });
  const writes: Promise<void>[] = [];
  for (let i = 0; i < EVENTS; i++) {
    const decision = check(cap, call);
    const event: AuditEvent = { id: `e${String(i)}`, at: Date.now(), durationMs: 1, kind: "tool", tool: "search", request: call, decision, outcome: { ok: true, resultBytes: 10 }, subject: auditSubject(cap) };
    writes.push(store.write(event));
  }
  await Promise.all(writes);
  await store.checkpoint();
  console.log(`\naudit export throughput (${String(EVENTS)} events, SQLite log, one checkpoint covering them)`);
  for (const format of ["jsonl", "otlp"] as const) {
    const start = performance.now();
    let bytes = 0;
    let batch: Parameters<typeof audit.otlpRequest>[0][number][] = [];
    for await (const line of store.exportEntries()) {
      if (format === "jsonl") bytes += JSON.stringify(line).length + 1;
      else {
        batch.push(line);
        if (batch.length === audit.OTLP_BATCH) {
          bytes += audit.otlpRequest(batch, Date.now()).length + 1;
          batch = [];
        }
      }
    }
    if (batch.length > 0) bytes += audit.otlpRequest(batch, Date.now()).length + 1;
    const seconds = (performance.now() - start) / 1000;
    console.log(`  ${format.padEnd(6)} ${Math.round(EVENTS / seconds).toLocaleString("en")} events/s (${(bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(2)} s)`);
  }
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

/** Windowed budget checks on both token stores, and audit export throughput. */
export async function runRatesBench(): Promise<void> {
  await windowedRates();
  await exportThroughput();
}
