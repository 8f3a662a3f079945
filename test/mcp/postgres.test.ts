import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { configuredPolicy } from "../../src/mcp/policy.ts";
import { openPostgresTokenStore } from "../../src/token/postgres-store.ts";
import type { TokenStore } from "../../src/token/store.ts";
import { createTokenMint, toToken } from "../../src/token/token.ts";
import { createTestSchema, databaseUrl, describePostgres, type TestSchema } from "../support/postgres.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "./support.ts";
import { restrict } from "../../src/index.ts";

/*
 * Two `agentcap serve` processes sharing one Postgres schema for tokens and
 * audit. A token revoked through one is refused by the other: we poll the
 * other up to a generous deadline and report how long it took.
 */


const bin = path.resolve("bin/agentcap.js");
let fixture: Fixture;
let schema: TestSchema;
let urlA = "";
let urlB = "";
const children: ChildProcess[] = [];
const stores: TokenStore[] = [];

async function startGateway(): Promise<string> {
  const child = spawn(process.execPath, [bin, "serve", "--config", fixture.configFile, "--port", "0"], { stdio: ["ignore", "pipe", "inherit"], env: process.env });
  children.push(child);
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    const m = /listening on (\S+)/.exec(line);
    if (m !== null) return m[1] as string;
  }
  throw new Error("the gateway process ended without printing its address");
}

describePostgres("two gateway processes sharing Postgres", () => {
  beforeAll(async () => {
    schema = await createTestSchema(databaseUrl as string);
    fixture = makeFixture();
    const store = { kind: "postgres", urlFromEnv: "DATABASE_URL", schema: schema.name };
    writeFileSync(fixture.configFile, JSON.stringify({ ...fixture.config, tokenStore: store, audit: store }));
  });

  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    const exits = children.map((c) => new Promise((resolve) => c.once("exit", resolve)));
    for (const c of children) c.kill("SIGTERM");
    await Promise.all(exits);
    await schema.drop();
    fixture.cleanup();
  });

  it("refuses, through the second, a token revoked through the first", async () => {
    // Started together: both create the shared schema at once, which the stores serialize with advisory locks.
    [urlA, urlB] = await Promise.all([startGateway(), startGateway()]);
    const keys = JSON.parse(readFileSync(path.join(fixture.dir, "keys.json"), "utf8")) as { keyId: number; privateKey: string };
    const config = await loadGatewayConfig(fixture.configFile);
    const store = await openPostgresTokenStore({ connectionString: databaseUrl as string, schema: schema.name });
    stores.push(store);
    const mint = createTokenMint({ issuer: config.issuer, policy: configuredPolicy(config.policy), signingKey: keys.privateKey, keyId: keys.keyId, store });
    const token = toToken(mint.issue({ id: "alice" }));
    const a = await httpClient(urlA, token);
    const b = await httpClient(urlB, token);
    try {
      // A refused session answers its client's next request with 401, which the client reports as an error.
      const call = (c: typeof a) =>
        c.client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }).then(textOf, (e: unknown) => (e instanceof Error ? e.message : String(e)));
      expect(await call(a)).toContain("hello from the workspace");
      expect(await call(b)).toContain("hello from the workspace");

      const res = await fetch(`${new URL(urlA).origin}/revoke`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      // revoke returned once every live store of the schema (gateway B's too) had read the revocation.
      expect(await call(a)).toMatch(/ERR_REVOKED: the token has been revoked/);
      expect(await call(b)).toMatch(/ERR_REVOKED: the token has been revoked/);
    } finally {
      await a.client.close();
      await b.client.close();
    }
  });

  it("spends a limited token's uses exactly once across both gateways", async () => {
    const keys = JSON.parse(readFileSync(path.join(fixture.dir, "keys.json"), "utf8")) as { keyId: number; privateKey: string };
    const config = await loadGatewayConfig(fixture.configFile);
    const store = await openPostgresTokenStore({ connectionString: databaseUrl as string, schema: schema.name });
    stores.push(store);
    const mint = createTokenMint({ issuer: config.issuer, policy: configuredPolicy(config.policy), signingKey: keys.privateKey, keyId: keys.keyId, store });
    // One read_file call spends two uses of every link: the tool call, and the file read its handler makes.
    const token = toToken(restrict(mint.issue({ id: "alice" }), { maxUses: 2 }));
    const a = await httpClient(urlA, token);
    const b = await httpClient(urlB, token);
    try {
      const call = (c: typeof a) => c.client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }).then(textOf);
      expect(await call(a)).toContain("hello from the workspace");
      expect(await call(b)).toMatch(/^ERR_BUDGET_EXHAUSTED/);
      expect(await call(a)).toMatch(/^ERR_BUDGET_EXHAUSTED/);
    } finally {
      await a.client.close();
      await b.client.close();
    }
  });
});
