import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { check } from "../../src/kernel/capability.ts";
import { StoreUnavailable } from "../../src/kernel/errors.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openPostgresTokenStore } from "../../src/token/postgres-store.ts";
import type { TokenStore } from "../../src/token/store.ts";
import { createTokenMint, toToken, verify } from "../../src/token/token.ts";
import { databaseUrl, describePostgres } from "../support/postgres.ts";

/*
 * The Postgres token store loses its server: its connections are ended with
 * pg_terminate_backend and its role may not log in again until the outage
 * ends. Meanwhile it cannot tell what is revoked: verification and
 * decisions fail closed with StoreUnavailable, not Revoked. A principal
 * revoked during the outage (through a store that still reaches the server)
 * is refused once the store is back, and one that was not is allowed again,
 * with no restart.
 */

const tag = randomBytes(5).toString("hex");
const role = `agentcap_store_down_${tag}`;
const keys = generateKeyPair();
const publicKeys = { 1: keys.publicKey };
const call = { action: "tool.call", tool: "a" } as const;
let admin: pg.Client;
let store: TokenStore | undefined;
let other: TokenStore | undefined;

function as(user: string): string {
  const url = new URL(databaseUrl as string);
  url.username = user;
  url.password = "";
  return url.href;
}

async function until(what: string, done: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The store whose server is lost, and one that still reaches it (connecting as the administrator). */
let lost: TokenStore;
let reaching: TokenStore;

function verdict(token: string): string {
  try {
    const d = check(verify(token, { publicKeys, store: lost }), call);
    return d.allowed ? "allowed" : d.code;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

describePostgres("a Postgres token store whose server is lost", () => {
  beforeAll(async () => {
    admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    // The store creates its schema if missing, which Postgres checks against the database's CREATE right first.
    await admin.query(`GRANT CREATE ON DATABASE ${new URL(databaseUrl as string).pathname.slice(1)} TO ${role}`);
    await admin.query(`CREATE SCHEMA ${role} AUTHORIZATION ${role}`);
    store = await openPostgresTokenStore({ connectionString: as(role), schema: role, pollIntervalMs: 50 });
    other = await openPostgresTokenStore({ connectionString: databaseUrl as string, schema: role, ackTimeoutMs: 200 });
    lost = store;
    reaching = other;
  }, 30_000);

  afterAll(async () => {
    await admin.query(`ALTER ROLE ${role} LOGIN`).catch(() => undefined);
    await store?.close();
    await other?.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${role} CASCADE`);
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
    await admin.query(`DROP OWNED BY ${role}`);
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  }, 30_000);

  it("refuses with StoreUnavailable while down, and after it, refuses what was revoked meanwhile and allows the rest", async () => {
    const mint = createTokenMint({ issuer: "test", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }), store: reaching });
    const alice = toToken(mint.issue({ id: "alice" }));
    const carol = toToken(mint.issue({ id: "carol" }));
    const held = verify(alice, { publicKeys, store: lost });
    expect([verdict(alice), verdict(carol), check(held, call).allowed]).toEqual(["allowed", "allowed", true]);

    await admin.query(`ALTER ROLE ${role} NOLOGIN`);
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
    await until("the store to notice", () => lost.unavailable() !== null);
    expect(lost.unavailable()).toMatch(/lost its connection to Postgres/);
    expect(verdict(alice)).toBe("ERR_STORE_UNAVAILABLE");
    expect(check(held, call)).toMatchObject({ allowed: false, code: "ERR_STORE_UNAVAILABLE", rule: "revocations" });
    expect(() => verify(carol, { publicKeys, store: lost })).toThrow(StoreUnavailable);
    expect(() => verify(carol, { publicKeys, store: lost })).not.toThrow(/was revoked/);
    await reaching.revoke({ principal: "carol" }, { reason: "left during the outage" });
    // Still down: still unknown, for both.
    expect([verdict(alice), verdict(carol)]).toEqual(["ERR_STORE_UNAVAILABLE", "ERR_STORE_UNAVAILABLE"]);

    await admin.query(`ALTER ROLE ${role} LOGIN`);
    await until("the store to recover", () => lost.unavailable() === null);
    expect([verdict(alice), verdict(carol), check(held, call).allowed]).toEqual(["allowed", "ERR_REVOKED", true]);
  }, 60_000);
});
