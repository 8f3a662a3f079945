import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { authorize, restrict } from "../../src/kernel/capability.ts";
import { createManualClock } from "../../src/kernel/clock.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openPostgresTokenStore } from "../../src/token/postgres-store.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import type { TokenStore } from "../../src/token/store.ts";
import { createTokenMint, toToken, verify, verifyShared } from "../../src/token/token.ts";
import { databaseUrl, describePostgres } from "../support/postgres.ts";
import { admitAll, call, startRacer } from "./rates-support.ts";

const keys = generateKeyPair();
const publicKeys = { 1: keys.publicKey };
const T0 = Date.UTC(2026, 0, 1);
const HOUR = { per: 3600, calls: 25, tools: ["search"] };

/** A token of alice's whose last link allows `rate`, minted under `store`. */
function ratedToken(store: TokenStore, rate: object): string {
  const mint = createTokenMint({ store, issuer: "t", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["search", "other"] }) });
  return toToken(restrict(mint.issue({ id: "alice", tenants: [] }), { rates: [rate as typeof HOUR] }));
}

describe("windowed rates in tokens, SQLite store", () => {
  const dir = mkdtempSync(join(tmpdir(), "agentcap-rates-"));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("every verifier of a rated token on one file counts one window, and a refusal says when to retry", async () => {
    const file = join(dir, "window.db");
    const [a, b] = [openSqliteTokenStore(file), openSqliteTokenStore(file)];
    const clock = createManualClock(T0);
    const token = ratedToken(a, { per: 60, calls: 3, tools: ["search"] });
    const [capA, capB] = [verify(token, { publicKeys, store: a, clock }), verify(token, { publicKeys, store: b, clock })];
    for (const cap of [capA, capB, capA]) {
      expect(authorize(cap, call).allowed).toBe(true);
      clock.advance(1000);
    }
    const refused = authorize(capB, call);
    expect(refused).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED", rule: "rates.0", retryAt: T0 + 60_000 });
    expect(refused.allowed || refused.reason).toMatch(/allows 3 calls per minute; retry after 2026-01-01T00:01:00.000Z/);
    // The rate counts only the tool it names.
    expect(authorize(capB, { action: "tool.call", tool: "other" }).allowed).toBe(true);
    clock.set(T0 + 60_000);
    expect(authorize(capB, call).allowed).toBe(true);
    expect(authorize(capA, call).allowed).toBe(false);
    await Promise.all([a.close(), b.close()]);
  });

  it("a window of cost units is shared too, and a request that alone exceeds it never fits", async () => {
    const file = join(dir, "cost.db");
    const [a, b] = [openSqliteTokenStore(file), openSqliteTokenStore(file)];
    const clock = createManualClock(T0);
    const token = ratedToken(a, { per: 86_400, cost: 10 });
    const [capA, capB] = [verify(token, { publicKeys, store: a, clock }), verify(token, { publicKeys, store: b, clock })];
    expect(authorize(capA, call, { cost: 6 }).allowed).toBe(true);
    clock.advance(1000);
    expect(authorize(capB, call, { cost: 4 }).allowed).toBe(true);
    expect(authorize(capA, call, { cost: 1 })).toMatchObject({ allowed: false, retryAt: T0 + 86_400_000 });
    const never = authorize(capB, call, { cost: 11 });
    expect(never).toMatchObject({ allowed: false, rule: "rates.0" });
    expect("retryAt" in never).toBe(false);
    await Promise.all([a.close(), b.close()]);
  });

  it("a rated link that already counted requests in this process cannot become a token; a fresh one can, and the window moves with it", async () => {
    const store = openSqliteTokenStore(":memory:");
    const mint = createTokenMint({ store, issuer: "t", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["search"] }) });
    const rated = restrict(mint.issue({ id: "bob", tenants: [] }), { rates: [{ per: 60, calls: 1 }] });
    expect(authorize(rated, call).allowed).toBe(true);
    expect(() => toToken(rated)).toThrow(InvalidInput);
    expect(() => toToken(rated)).toThrow(/windowed rates that already counted requests/);
    const fresh = restrict(mint.issue({ id: "bob", tenants: [] }), { rates: [{ per: 60, calls: 1 }] });
    const token = toToken(fresh);
    expect(authorize(verify(token, { publicKeys, store }), call).allowed).toBe(true);
    // The in-process link spends the same window as its token.
    expect(authorize(fresh, call)).toMatchObject({ allowed: false, rule: "rates.0" });
    await store.close();
  });

  it("two connections and two processes calling at once on one file admit exactly the rate", async () => {
    const file = join(dir, "race.db");
    const stores = [openSqliteTokenStore(file), openSqliteTokenStore(file)];
    const token = ratedToken(stores[0] as TokenStore, HOUR);
    const racers = await Promise.all([startRacer("sqlite", file, token, keys.publicKey), startRacer("sqlite", file, token, keys.publicKey)]);
    const caps = stores.map((store) => verify(token, { publicKeys, store }));
    for (const r of racers) r.go();
    const counts = await Promise.all([...caps.map((cap, i) => admitAll(cap, token, { publicKeys, store: stores[i] as TokenStore })), ...racers.map((r) => r.admitted)]);
    console.info(`SQLite: admitted per racer ${counts.join(", ")}`);
    expect(counts.reduce((x, y) => x + y, 0)).toBe(25);
    await Promise.all(stores.map((s) => s.close()));
  }, 60_000);
});

describePostgres("windowed rates in tokens, Postgres store", () => {
  const url = databaseUrl ?? "";
  const schema = `agentcap_test_${randomBytes(6).toString("hex")}`;
  const open = (leaseShare?: number) => openPostgresTokenStore({ connectionString: url, schema, ...(leaseShare === undefined ? {} : { leaseShare }) });
  afterAll(async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it("two stores with their own connections and two processes calling at once admit exactly the rate; a refusal says when to retry", async () => {
    const stores = await Promise.all([open(), open()]);
    const token = ratedToken(stores[0], HOUR);
    const racers = await Promise.all([startRacer("postgres", schema, token, keys.publicKey), startRacer("postgres", schema, token, keys.publicKey)]);
    const caps = await Promise.all(stores.map((store) => verifyShared(token, { publicKeys, store })));
    for (const r of racers) r.go();
    const counts = await Promise.all([...caps.map((cap, i) => admitAll(cap, token, { publicKeys, store: stores[i] as TokenStore })), ...racers.map((r) => r.admitted)]);
    console.info(`Postgres: admitted per racer ${counts.join(", ")}`);
    expect(counts.reduce((x, y) => x + y, 0)).toBe(25);
    const before = Date.now();
    const refused = authorize(caps[0] as (typeof caps)[0], call);
    expect(refused).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED", rule: "rates.0" });
    // Counted for the window after the lease in which it was reserved: within the hour plus the lease time (30 s) from now.
    const retryAt = refused.allowed ? 0 : (refused.retryAt ?? 0);
    expect(retryAt).toBeGreaterThan(before);
    expect(retryAt).toBeLessThanOrEqual(before + 3_630_000 + 1000);
    await Promise.all(stores.map((s) => s.close()));
  }, 60_000);

  it("room reserved and not used comes back when a store closes", async () => {
    const first = await open(1);
    const token = ratedToken(first, { per: 3600, calls: 10 });
    // Reserves the whole window and spends one call of it.
    const cap = await verifyShared(token, { publicKeys, store: first });
    expect(authorize(cap, call).allowed).toBe(true);
    const second = await open();
    expect(await admitAll(await verifyShared(token, { publicKeys, store: second }), token, { publicKeys, store: second })).toBe(0);
    await first.close();
    const third = await open();
    expect(await admitAll(await verifyShared(token, { publicKeys, store: third }), token, { publicKeys, store: third })).toBe(9);
    await Promise.all([second.close(), third.close()]);
  }, 60_000);
});
