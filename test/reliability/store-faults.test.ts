import { randomBytes } from "node:crypto";
import path from "node:path";
import Database from "better-sqlite3";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "../mcp/support.ts";
import { databaseUrl, describePostgres } from "../support/postgres.ts";

/*
 * The audit store cannot write (its disk is full, or it was made
 * read-only): every call that would act fails closed with ERR_AUDIT_FAILURE
 * and does nothing; requests that need no record (listing tools) are still
 * served; once the store can write again, calls succeed without a restart,
 * and the log verifies. The faults are the engines' own errors, raised in
 * the gateway's write transactions from outside the process: a trigger
 * (SQLite: "database or disk is full"; Postgres: SQLSTATE 53100 disk_full),
 * and for Postgres a role whose new connections are read-only.
 */

interface Running {
  readonly fixture: Fixture;
  readonly gateway: Gateway;
  readonly http: HttpGateway;
}

const running: Running[] = [];
const schemas: string[] = [];

afterAll(async () => {
  for (const r of running) {
    await r.http.close();
    await r.gateway.close();
    r.fixture.cleanup();
  }
  if (databaseUrl === undefined || schemas.length === 0) return;
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await admin.end();
});

async function start(audit: Record<string, unknown>): Promise<Running> {
  const fixture = makeFixture({ audit });
  const gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  const http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
  const r = { fixture, gateway, http };
  running.push(r);
  return r;
}

const read = async (client: Awaited<ReturnType<typeof httpClient>>["client"]) =>
  (await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } })) as CallToolResult;

/** Calls fail closed during `fault`, listing still works, and after `repair` calls succeed and the log verifies. */
async function failsClosedThenRecovers(r: Running, fault: () => Promise<void>, repair: () => Promise<void>, engineMessage: RegExp): Promise<void> {
  const { client } = await httpClient(r.http.url, r.gateway.issueToken("alice"));
  expect(JSON.parse(textOf(await read(client)))).toMatchObject({ text: "hello from the workspace\n" });
  const before = (await r.gateway.audit.query({ limit: 10_000 })).length;
  await fault();
  for (let i = 0; i < 5; i++) {
    const refused = await read(client);
    expect(refused.isError).toBe(true);
    // The client learns that the call was not recorded, so it did not happen; the engine's words stay in the server.
    expect(textOf(refused)).toMatch(/^ERR_AUDIT_FAILURE: /);
    expect(textOf(refused)).not.toMatch(engineMessage);
  }
  expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(["list_files", "read_file"]);
  await repair();
  expect(JSON.parse(textOf(await read(client)))).toMatchObject({ text: "hello from the workspace\n" });
  // Nothing of the refused calls reached the log, and what did still verifies.
  const records = await r.gateway.audit.query({ limit: 10_000 });
  expect(records.length).toBeGreaterThan(before);
  expect(records.filter((rec) => rec.outcomeSeq === null)).toEqual([]);
  expect((await r.gateway.audit.verify()).ok).toBe(true);
  await client.close();
}

describe("the SQLite audit log cannot write", () => {
  it("disk full: calls fail closed with ERR_AUDIT_FAILURE, listing is served, and calls succeed again once it can write", async () => {
    const r = await start({ kind: "sqlite", path: "state/audit.db" });
    const db = new Database(path.join(r.fixture.dir, "state", "audit.db"));
    await failsClosedThenRecovers(
      r,
      () => {
        db.exec("CREATE TRIGGER disk_full BEFORE INSERT ON audit_events BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END");
        return Promise.resolve();
      },
      () => {
        db.exec("DROP TRIGGER disk_full");
        return Promise.resolve();
      },
      /disk is full/,
    );
    db.close();
  });
});

describePostgres("the Postgres audit log cannot write", () => {
  it("disk full (SQLSTATE 53100): calls fail closed, listing is served, and calls succeed again once it can write", async () => {
    const schema = `agentcap_test_${randomBytes(6).toString("hex")}`;
    schemas.push(schema);
    const r = await start({ kind: "postgres", url: databaseUrl, schema });
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await failsClosedThenRecovers(
      r,
      async () => {
        await admin.query(`CREATE FUNCTION ${schema}.disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$`);
        await admin.query(`CREATE TRIGGER disk_full BEFORE INSERT ON ${schema}.audit_events FOR EACH ROW EXECUTE FUNCTION ${schema}.disk_full()`);
      },
      async () => {
        await admin.query(`DROP TRIGGER disk_full ON ${schema}.audit_events`);
      },
      /No space left/,
    );
    await admin.end();
  });

  it("read-only: its connections replaced by read-only ones, calls fail closed, and succeed again once it is writable", async () => {
    const role = `agentcap_fault_ro_${randomBytes(5).toString("hex")}`;
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    await admin.query(`CREATE SCHEMA ${role} AUTHORIZATION ${role}`);
    await admin.query(`GRANT CREATE ON DATABASE ${new URL(databaseUrl as string).pathname.slice(1)} TO ${role}`);
    const url = new URL(databaseUrl as string);
    url.username = role;
    try {
      const r = await start({ kind: "postgres", url: url.href, schema: role });
      // Settings of a role apply to its new connections: end the current ones.
      const reconnect = () => admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
      await failsClosedThenRecovers(
        r,
        async () => {
          await admin.query(`ALTER ROLE ${role} SET default_transaction_read_only = on`);
          await reconnect();
        },
        async () => {
          await admin.query(`ALTER ROLE ${role} RESET default_transaction_read_only`);
          await reconnect();
        },
        /read-only transaction/,
      );
      running.splice(running.indexOf(r), 1);
      await r.http.close();
      await r.gateway.close();
      r.fixture.cleanup();
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS ${role} CASCADE`);
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
      await admin.query(`DROP OWNED BY ${role}`);
      await admin.query(`DROP ROLE ${role}`);
      await admin.end();
    }
  });
});
