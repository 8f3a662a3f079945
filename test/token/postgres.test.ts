import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openPostgresTokenStore } from "../../src/token/postgres-store.ts";
import { attenuate, createTokenMint, inspectVerified, revokeToken, toToken, verify } from "../../src/token/token.ts";

const url = process.env.DATABASE_URL;
if (url === undefined) console.warn("test/token/postgres.test.ts skipped: set DATABASE_URL (postgres://…) to run the shared-store tests");

const schema = `agentcap_test_${randomBytes(6).toString("hex")}`;
const keys = generateKeyPair();
const publicKeys = { 1: keys.publicKey };
const mint = createTokenMint({ issuer: "test", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }) });
const call = { action: "tool.call", tool: "a" } as const;

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe.skipIf(url === undefined)("Postgres token store", () => {
  afterAll(async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it("another process learns of a revocation through LISTEN/NOTIFY", async () => {
    const store = await openPostgresTokenStore({ connectionString: url ?? "", schema });
    const token = toToken(mint.issue({ id: "alice" }).narrow({ tools: ["a"] }));
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
    const inA = verify(token, { publicKeys, store: a });
    const inB = verify(token, { publicKeys, store: b });
    const key = inspectVerified(token, { publicKeys, store: a })[1]?.revocationId ?? "";
    expect(inA.authorize(call).allowed).toBe(true);
    await until(() => b.usage(key).calls === 1);
    expect(inB.authorize(call).allowed).toBe(true);
    await until(() => a.usage(key).calls === 2);
    expect(inA.authorize(call)).toMatchObject({ allowed: false, code: "ERR_BUDGET_EXHAUSTED" });
    await a.revoke({ capabilityId: inA.id }, "gone");
    await a.close();
    await b.close();
    const c = await openPostgresTokenStore({ connectionString: url ?? "", schema });
    expect(() => verify(token, { publicKeys, store: c })).toThrow(/gone/);
    await c.close();
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
