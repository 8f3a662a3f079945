import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import type { Grant } from "../../src/kernel/grant.ts";
import { openPostgresTokenStore, type PostgresStoreOptions } from "../../src/token/postgres-store.ts";
import type { TokenStore } from "../../src/token/store.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { attenuate, createTokenMint, inspectVerified, revokeToken, toToken, verify, verifyShared } from "../../src/token/token.ts";
import { authorize, check, narrow } from "../../src/index.ts";
import { databaseUrl, describePostgres } from "../support/postgres.ts";

const url = databaseUrl;

const schema = `agentcap_test_${randomBytes(6).toString("hex")}`;
const keys = generateKeyPair();
const publicKeys = { 1: keys.publicKey };
const mintStore = url === undefined ? openSqliteTokenStore(":memory:") : await openPostgresTokenStore({ connectionString: url, schema });
const mint = createTokenMint({ store: mintStore, issuer: "test", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }) });
const call = { action: "tool.call", tool: "a" } as const;

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

const open = (options: Partial<PostgresStoreOptions> = {}) => openPostgresTokenStore({ ...options, connectionString: url ?? "", schema });
const limited = (id: string, grant: Omit<Grant, "tools">) => attenuate(toToken(mint.issue({ id })), { tools: ["a"], ...grant }, { publicKeys });

/** Tries `attempts` times to authorize, asking the store for more leases after each denial; returns the successes. */
async function spend(store: TokenStore, token: string, attempts: number): Promise<number> {
  const cap = await verifyShared(token, { publicKeys, store });
  let successes = 0;
  for (let i = 0; i < attempts; i++) {
    if (authorize(cap, call).allowed) successes++;
    else await verifyShared(token, { publicKeys, store });
    await new Promise((resolve) => setImmediate(resolve));
  }
  return successes;
}

interface Child {
  readonly process: ChildProcess;
  readonly next: () => Promise<string>;
}

async function startChild(token: string, options: Partial<PostgresStoreOptions>, ...mode: string[]): Promise<Child> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(new URL("postgres-lease-child.ts", import.meta.url)), schema, token, keys.publicKey, JSON.stringify(options), ...mode],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const iterator = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => String((await iterator.next()).value);
  expect(await next()).toBe("ready");
  return { process: child, next };
}

/** Successes of a child in `spend` mode, after telling it to go. */
async function childSuccesses(child: Child): Promise<number> {
  child.process.stdin?.write("go\n");
  const line = await child.next();
  expect(line).toMatch(/^successes \d+$/);
  if (child.process.exitCode === null) await new Promise((resolve) => child.process.once("exit", resolve));
  expect(child.process.exitCode).toBe(0);
  return Number(line.split(" ")[1]);
}

/** Two stores here and two processes race on `token`; afterwards a fresh store spends what is left. Returns both totals. */
async function race(token: string, attempts: number): Promise<{ readonly raced: number; readonly left: number }> {
  const children = await Promise.all([startChild(token, {}, "spend", String(attempts)), startChild(token, {}, "spend", String(attempts))]);
  const stores = await Promise.all([open(), open()]);
  const counts = await Promise.all([...stores.map((store) => spend(store, token, attempts)), ...children.map(childSuccesses)]);
  await Promise.all(stores.map((store) => store.close()));
  const fresh = await open({ leaseShare: 1 });
  const left = await spend(fresh, token, attempts);
  await fresh.close();
  console.info(`successes per racer: ${counts.join(", ")}; left afterwards: ${left}`);
  return { raced: counts.reduce((a, b) => a + b, 0), left };
}

describePostgres("Postgres token store", () => {
  afterAll(async () => {
    await mintStore.close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it("another process learns of a revocation through LISTEN/NOTIFY", async () => {
    const store = await openPostgresTokenStore({ connectionString: url ?? "", schema });
    const token = toToken(narrow(mint.issue({ id: "alice" }), { tools: ["a"] }));
    const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("postgres-child.ts", import.meta.url)), schema, token, keys.publicKey], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines = createInterface({ input: child.stdout });
    const iterator = lines[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toBe("ready");
    await revokeToken(token, { publicKeys, store, reason: "done" });
    const report = String((await iterator.next()).value);
    expect(report).toMatch(/^revoked \d+$/);
    console.info(`second process saw the revocation ${report.split(" ")[1] ?? "?"} ms after it was ready (it polls every 10 ms)`);
    await new Promise((resolve) => child.on("exit", resolve));
    expect(child.exitCode).toBe(0);
    await store.close();
  }, 30_000);

  it("revocations persist; budgets are shared between stores", async () => {
    const a = await openPostgresTokenStore({ connectionString: url ?? "", schema });
    const b = await openPostgresTokenStore({ connectionString: url ?? "", schema });
    const token = attenuate(toToken(mint.issue({ id: "bob" })), { tools: ["a"], maxUses: 2 }, { publicKeys });
    const inA = await verifyShared(token, { publicKeys, store: a });
    const inB = await verifyShared(token, { publicKeys, store: b });
    const key = inspectVerified(token, { publicKeys, store: a })[1]?.revocationId ?? "";
    expect(authorize(inA, call).allowed).toBe(true);
    // A's lease holds the other use, so B has none until A gives it back.
    expect(authorize(inB, call)).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });
    await a.close();
    let allowed = false;
    await until(() => (allowed = authorize(inB, call).allowed));
    expect(allowed).toBe(true);
    expect(b.usage(key).calls).toBe(2);
    expect(authorize(inB, call)).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });
    await b.revoke({ capabilityId: inB.id }, { reason: "gone" });
    await b.close();
    const c = await openPostgresTokenStore({ connectionString: url ?? "", schema });
    expect(() => verify(token, { publicKeys, store: c })).toThrow(/gone/);
    await c.close();
  });

  it("a single-use token is used exactly once by two stores and two processes racing on it", async () => {
    const { raced, left } = await race(limited("carol", { maxUses: 1 }), 40);
    expect(raced).toBe(1);
    expect(left).toBe(0);
  }, 60_000);

  it("a budget of N calls spread over two stores and two processes is never exceeded, and what is returned can still be spent", async () => {
    const { raced, left } = await race(limited("dave", { budget: { calls: 25 } }), 40);
    expect(raced).toBeLessThanOrEqual(25);
    expect(raced + left).toBe(25);
  }, 60_000);

  it("a dead process's lease comes back after it expires, less the units it had armed", async () => {
    const token = limited("erin", { budget: { calls: 4 } });
    const child = await startChild(token, { leaseShare: 1, armAhead: 1, leaseTtlMs: 1000 }, "hold");
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const { rows } = await admin.query<{ calls_held: string; calls_armed: string }>(`SELECT calls_held, calls_armed FROM ${schema}.token_leases`);
    await admin.end();
    expect(rows.map((r) => [Number(r.calls_held), Number(r.calls_armed)])).toContainEqual([4, 1]);
    const exited = new Promise((resolve) => child.process.once("exit", resolve));
    child.process.kill("SIGKILL");
    await exited;

    const store = await open();
    const cap = await verifyShared(token, { publicKeys, store });
    const deadline = Date.now() + 20_000;
    let first = false;
    while (!first && Date.now() < deadline) {
      first = authorize(cap, call).allowed;
      if (!first) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(first).toBe(true);
    const more = await spend(store, token, 20);
    // The one armed unit may have been used before the process died, so it stays spent: fail closed.
    expect(1 + more).toBe(3);
    await store.close();
  }, 60_000);

  it("close returns the units a store leased and did not use", async () => {
    const token = limited("frank", { budget: { calls: 5 } });
    const a = await open({ leaseShare: 1 });
    const b = await open();
    const inA = await verifyShared(token, { publicKeys, store: a });
    const inB = await verifyShared(token, { publicKeys, store: b });
    expect(authorize(inB, call)).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });
    expect(authorize(inA, call).allowed).toBe(true);
    expect(authorize(inA, call).allowed).toBe(true);
    await a.close();
    expect(await spend(b, token, 20)).toBe(3);
    await b.close();
  }, 30_000);

  it("treats notifications as hints: garbage is ignored, a forged revocation changes nothing, a real one is re-read", async () => {
    const store = await open();
    const token = toToken(narrow(mint.issue({ id: "gina" }), { tools: ["a"] }));
    const cap = verify(token, { publicKeys, store });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const channel = `${schema}_token_events`;
      const ids = inspectVerified(token, { publicKeys, store }).map((b) => b.revocationId);
      const forged = ["not json", "null", "[]", '{"revoke":null}', '{"revoke":{"kind":"block"}}', "{\"__proto__\":{\"revoke\":1}}",
        JSON.stringify({ revoke: { kind: "block", id: ids[1], reason: "forged" } }), JSON.stringify({ revoke: { kind: "link", id: cap.id } }),
        JSON.stringify({ usage: { key: ids[1], origin: "x", cost: 1e9 } }), "x".repeat(7000)];
      for (const payload of forged) await admin.query("SELECT pg_notify($1, $2)", [channel, payload]);
      // A real revocation sent afterwards arrives after all of them, so once it is seen the forged ones have been handled.
      const other = verify(toToken(narrow(mint.issue({ id: "hank" }), { tools: ["a"] })), { publicKeys, store });
      const writer = await open();
      await writer.revoke({ capabilityId: other.id }, { reason: "real" });
      await until(() => !check(other, call).allowed);
      await writer.close();
      expect(check(other, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
      expect(authorize(cap, call).allowed).toBe(true);
      // Not JSON, null, an array, an inherited key and an over-long payload: ignored, and counted.
      expect(store.stats().notifications.ignored).toBe(5);
      expect(store.stats().notifications.received).toBeGreaterThanOrEqual(forged.length + 1);
    } finally {
      await admin.end();
      await store.close();
    }
  });

  it("a dropped notification connection falls back to polling, so a revocation is not missed, then listens again", async () => {
    const verifier = await open({ pollIntervalMs: 20 });
    const revoker = await open();
    const token = toToken(narrow(mint.issue({ id: "jill" }), { tools: ["a"] }));
    const cap = verify(token, { publicKeys, store: verifier });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      // Every listener of this schema loses its connection; the stores keep serving from memory and poll.
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [`agentcap-tokens-listener:${schema}`]);
      await until(() => verifier.stats().polling);
      expect(verifier.stats().polling).toBe(true);
      expect(check(cap, call).allowed).toBe(true);
      await revokeToken(token, { publicKeys, store: revoker, reason: "while deaf" });
      // revoke waited for every live store to read it, the polling one included.
      expect(check(cap, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
      await until(() => !verifier.stats().polling);
      expect(verifier.stats().polling).toBe(false);
      const next = verify(toToken(narrow(mint.issue({ id: "jill" }), { tools: ["a"] })), { publicKeys, store: verifier });
      await revoker.revoke({ capabilityId: next.id }, { reason: "heard again" });
      expect(check(next, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    } finally {
      await admin.end();
      await verifier.close();
      await revoker.close();
    }
  }, 30_000);

  it("a principal revoked through one store is refused by another at once, at its mint too, until reinstated", async () => {
    const a = await open();
    const b = await open();
    const bMint = createTokenMint({ store: b, issuer: "test", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }) });
    const who = `pg-${randomBytes(4).toString("hex")}`;
    const inB = verify(toToken(narrow(mint.issue({ id: who }), { tools: ["a"] })), { publicKeys, store: b });
    const mintedInB = bMint.issue({ id: who });
    await a.revoke({ principal: who }, { reason: "left the company" });
    // revoke resolved once b had read it: no waiting.
    expect(check(inB, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    expect(check(mintedInB, call)).toMatchObject({ allowed: false, code: "ERR_REVOKED" });
    expect(() => bMint.issue({ id: who })).toThrow(/reinstate/);
    await a.reinstate({ principal: who });
    await until(() => {
      try {
        bMint.issue({ id: who });
        return true;
      } catch {
        return false;
      }
    });
    expect(check(bMint.issue({ id: who }), call).allowed).toBe(true);
    expect(check(inB, call).allowed).toBe(false);
    await a.close();
    await b.close();
  });

  it("reports its size: revocations and usage keys", async () => {
    const store = await open();
    const before = store.stats().revocations;
    await store.revoke({ principal: `size-${randomBytes(4).toString("hex")}` }, { reason: "size" });
    expect(store.stats().revocations).toBe(before + 1);
    expect(store.stats().polling).toBe(false);
    await store.close();
  });

  it("refuses an over-long reason before storing anything, and stays unrevoked everywhere", async () => {
    const store = await open();
    const token = toToken(narrow(mint.issue({ id: "ivan" }), { tools: ["a"] }));
    await expect(revokeToken(token, { publicKeys, store, reason: "x".repeat(8001) })).rejects.toThrow(/at most 1000 characters/);
    expect(check(verify(token, { publicKeys, store }), call).allowed).toBe(true);
    await store.close();
  });

  it("several processes may open a fresh schema at the same moment", async () => {
    const fresh = `${schema}_race`;
    try {
      const stores = await Promise.all(Array.from({ length: 4 }, () => openPostgresTokenStore({ connectionString: url ?? "", schema: fresh })));
      await Promise.all(stores.map((store) => store.close()));
    } finally {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${fresh} CASCADE`);
      await client.end();
    }
  });
});
