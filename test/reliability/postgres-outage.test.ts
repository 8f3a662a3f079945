import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { openPostgresTokenStore } from "../../src/token/postgres-store.ts";
import type { TokenStore } from "../../src/token/store.ts";
import { createTokenMint, toToken } from "../../src/token/token.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "../mcp/support.ts";
import { databaseUrl, describePostgres } from "../support/postgres.ts";
import { startGateway, stopGently, until, type GatewayProcess } from "./processes.ts";

/*
 * Postgres goes away under a running gateway. The audit log and the token
 * store connect as roles of their own; an outage takes a role's right to
 * log in and ends every connection of it with pg_terminate_backend (a
 * shared server cannot be restarted under other runs; to the gateway the
 * two look the same: its connections end, and new ones are refused). The
 * gateway process survives both; while the audit log is down, calls fail
 * closed with ERR_AUDIT_FAILURE and sessions stay open; while the token
 * store is down, it cannot tell what is revoked, so every request is
 * refused with 503, Retry-After and ERR_STORE_UNAVAILABLE (never as a
 * revocation) and sessions stay open; a token revoked meanwhile (through
 * another store that still reaches the server) is refused once it is back;
 * and the gateway recovers from both by itself.
 */

const tag = randomBytes(5).toString("hex");
const auditRole = `agentcap_fault_audit_${tag}`;
const tokenRole = `agentcap_fault_tokens_${tag}`;
let admin: pg.Client;
let fixture: Fixture;
let gateway: GatewayProcess;
let adminStore: TokenStore;

/** The test database's URL, connecting as `role`. */
function as(role: string): string {
  const url = new URL(databaseUrl as string);
  url.username = role;
  url.password = "";
  return url.href;
}

describePostgres("Postgres lost under a running gateway", () => {
  beforeAll(async () => {
    admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    for (const role of [auditRole, tokenRole]) {
      await admin.query(`CREATE ROLE ${role} LOGIN`);
      // The stores create their schemas if missing, which Postgres checks against the database's CREATE right first.
      await admin.query(`GRANT CREATE ON DATABASE ${new URL(databaseUrl as string).pathname.slice(1)} TO ${role}`);
      await admin.query(`CREATE SCHEMA ${role} AUTHORIZATION ${role}`);
    }
    fixture = makeFixture({
      tokenStore: { kind: "postgres", url: as(tokenRole), schema: tokenRole },
      audit: { kind: "postgres", url: as(auditRole), schema: auditRole },
    });
    gateway = await startGateway(fixture.configFile, "alice");
    adminStore = await openPostgresTokenStore({ connectionString: databaseUrl as string, schema: tokenRole });
  }, 60_000);

  afterAll(async () => {
    await stopGently(gateway);
    await adminStore.close();
    for (const role of [auditRole, tokenRole]) {
      await admin.query(`DROP SCHEMA IF EXISTS ${role} CASCADE`);
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
      await admin.query(`DROP OWNED BY ${role}`);
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
    }
    await admin.end();
    fixture.cleanup();
  }, 60_000);

  /** Ends every connection of `role` and refuses new ones. */
  const down = async (role: string) => {
    await admin.query(`ALTER ROLE ${role} NOLOGIN`);
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
  };
  const up = (role: string) => admin.query(`ALTER ROLE ${role} LOGIN`);

  const read = (client: Awaited<ReturnType<typeof httpClient>>["client"]) =>
    client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }, undefined, { timeout: 15_000 }) as Promise<CallToolResult>;

  /** What a new session's initialize gets with `token`. */
  const initializeAnswer = (token: string) =>
    fetch(gateway.url, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "0" } } }),
    });
  /** The status a new session's initialize gets with `token`. */
  const initialize = async (token: string) => (await initializeAnswer(token)).status;

  it("the audit log down: calls fail closed with ERR_AUDIT_FAILURE, the session stays, and calls succeed again once it is back", async () => {
    const alice = await httpClient(gateway.url, gateway.token);
    expect((await read(alice.client)).isError).not.toBe(true);
    await down(auditRole);
    for (let i = 0; i < 5; i++) {
      const refused = await read(alice.client);
      expect(refused.isError).toBe(true);
      expect(textOf(refused)).toMatch(/^ERR_AUDIT_FAILURE: /);
    }
    await up(auditRole);
    await until("calls to succeed again", async () => (await read(alice.client)).isError !== true, 30_000);
    expect(textOf(await read(alice.client))).toContain("hello from the workspace");
    expect(gateway.process.exitCode).toBeNull();
    await alice.client.close();
  }, 60_000);

  it("everything down: requests refused with 503 and Retry-After as ERR_STORE_UNAVAILABLE, sessions kept; a token revoked meanwhile stays refused; the gateway recovers by itself", async () => {
    const keys = JSON.parse(readFileSync(path.join(fixture.dir, "keys.json"), "utf8")) as { keyId: number; privateKey: string };
    const mint = createTokenMint({
      issuer: "test-gateway",
      signingKey: keys.privateKey,
      keyId: keys.keyId,
      store: adminStore,
      policy: () => ({ tools: ["read_file"], fs: [{ path: path.join(fixture.workspace, "public"), ops: ["read"] }] }),
    });
    const carolToken = toToken(mint.issue({ id: "carol" }));
    const alice = await httpClient(gateway.url, gateway.token);
    const carol = await httpClient(gateway.url, carolToken);
    expect((await read(alice.client)).isError).not.toBe(true);
    expect((await read(carol.client)).isError).not.toBe(true);

    await down(tokenRole);
    await down(auditRole);
    // The token store cannot tell what is revoked: refused for now (503, ERR_STORE_UNAVAILABLE), never said to be revoked.
    await until("alice's requests to be refused", async () => read(alice.client).then(() => false, (e: unknown) => /ERR_STORE_UNAVAILABLE/.test(String(e))), 10_000);
    await expect(read(alice.client)).rejects.not.toThrow(/ERR_REVOKED|revoked/);
    const inSession = await fetch(gateway.url, {
      method: "POST",
      headers: {
        authorization: `Bearer ${gateway.token}`,
        "mcp-session-id": alice.transport.sessionId ?? "",
        "mcp-protocol-version": "2025-06-18",
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list" }),
    });
    expect(inSession.status).toBe(503);
    expect(inSession.headers.get("retry-after")).toMatch(/^\d+$/);
    const refused = await initializeAnswer(gateway.token);
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/^ERR_STORE_UNAVAILABLE: .*retry/);
    expect(gateway.stderr()).toMatch(/503 for POST \/mcp .*ERR_STORE_UNAVAILABLE: .*lost its connection to Postgres/);
    // Revoked while the gateway cannot hear of it.
    await adminStore.revoke({ principal: "carol" }, { reason: "left during the outage" });
    expect(await initialize(carolToken)).toBe(503);
    expect(gateway.process.exitCode).toBeNull();

    await up(tokenRole);
    await up(auditRole);
    // The same session is served again: it was never closed.
    await until("alice's session to be served again", async () => {
      const result = await read(alice.client).catch(() => null);
      return result !== null && result.isError !== true;
    }, 30_000);
    await expect(read(carol.client)).rejects.toThrow(/ERR_REVOKED/);
    expect(await initialize(carolToken)).toBe(401);
    expect(gateway.process.exitCode).toBeNull();
    await alice.client.close().catch(() => undefined);
    await carol.client.close().catch(() => undefined);
  }, 90_000);
});
