import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAuditStore } from "../../src/audit/index.ts";
import { InvalidInput } from "../../src/kernel/index.ts";
import { startExplorer, type ExploreHandle, type ExploreOptions } from "../../src/cli/explore-command.ts";
import { createTokenMint, generateKeyPair, openSqliteTokenStore, revokeToken, toToken } from "../../src/token/index.ts";
import type { SessionView, TimelinePage } from "../../src/web/index.ts";
import { scenario } from "../audit/fixtures.ts";
import { createTestSchema, databaseUrl, describePostgres, type TestSchema } from "../support/postgres.ts";

/*
 * `agentcap audit explore` over any audit log, not only a gateway's: a bare
 * SQLite file or a Postgres schema, opened read-only, with the tokens of a
 * key set and token store, or a token made for the run.
 */

let dir: string;
const { named } = scenario();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "agentcap-explore-cli-"));
  const audit = await openAuditStore({ kind: "sqlite", path: join(dir, "audit.db") });
  for (const [, event] of named) await audit.write(event);
  await audit.close();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function serving<T>(options: ExploreOptions, run: (handle: ExploreHandle, api: (path: string, token: string | null, init?: RequestInit) => Promise<Response>) => Promise<T>): Promise<T> {
  const handle = await startExplorer({ port: 0, ...options }, () => undefined);
  const api = (path: string, token: string | null, init: RequestInit = {}) =>
    fetch(new URL(`api/${path}`, handle.url), { ...init, headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(init.headers as Record<string, string> | undefined) } });
  try {
    return await run(handle, api);
  } finally {
    await handle.close();
  }
}

describe("agentcap audit explore over a bare SQLite audit log", () => {
  it("without public keys, makes one audit-read token for the run, reads the log with it, and revokes nothing", async () => {
    await serving({ store: join(dir, "audit.db") }, async (handle, api) => {
      expect(handle.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/explore\/$/);
      const token = handle.token ?? "";
      expect(token).not.toBe("");
      expect(await (await api("session", token)).json()).toEqual({ principal: "operator", scope: { all: true }, canRevoke: false } satisfies SessionView);
      const page = (await (await api("events?order=asc&limit=1000", token)).json()) as TimelinePage;
      expect(page.events.length).toBe(named.length);
      expect((await api("events", null)).status).toBe(401);
      const other = generateKeyPair();
      const elsewhere = createTokenMint({ issuer: "x", signingKey: other.privateKey, keyId: 1, store: openSqliteTokenStore(":memory:"), policy: () => ({ audit: ["read"] }) });
      expect((await api("events", toToken(elsewhere.issue({ id: "operator" })))).status).toBe(401);
      const revoke = await api("revoke", token, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ target: { principal: "alice" } }) });
      expect(revoke.status).toBe(501);
    });
    // The run's token dies with it: the next run makes another key.
    const first = await serving({ store: join(dir, "audit.db") }, (h) => Promise.resolve(h.token ?? ""));
    await serving({ store: join(dir, "audit.db") }, async (_h, api) => {
      expect((await api("session", first)).status).toBe(401);
    });
  });

  it("with a public key set and a token store, reads with their tokens only: an audit grant, not revoked", async () => {
    const keys = generateKeyPair();
    writeFileSync(join(dir, "keys.json"), JSON.stringify({ 3: keys.publicKey }));
    const tokens = openSqliteTokenStore(join(dir, "tokens.db"));
    const mint = createTokenMint({ issuer: "ops", signingKey: keys.privateKey, keyId: 3, store: tokens, policy: (p) => (p.id === "auditor" ? { audit: ["read"] } : { tools: ["search"] }) });
    const auditor = toToken(mint.issue({ id: "auditor" }));
    const dismissed = toToken(mint.issue({ id: "auditor" }, { requestId: "old" }));
    await revokeToken(dismissed, { publicKeys: { 3: keys.publicKey }, store: tokens, reason: "the auditor left" });
    await serving({ store: join(dir, "audit.db"), publicKeys: join(dir, "keys.json"), tokenStore: join(dir, "tokens.db") }, async (handle, api) => {
      expect(handle.token).toBeNull();
      expect(await (await api("session", auditor)).json()).toMatchObject({ principal: "auditor", canRevoke: false });
      expect((await api("events", toToken(mint.issue({ id: "bob" })))).status).toBe(403);
      expect((await api("events", dismissed)).status).toBe(401);
    });
    await tokens.close();
  });

  it("refuses what it cannot open, and --config mixed with a log's options, with a message", async () => {
    await expect(startExplorer({ store: join(dir, "missing.db") })).rejects.toThrow(/missing\.db/);
    await expect(startExplorer({ config: join(dir, "gateway.json"), store: join(dir, "audit.db") })).rejects.toThrow(/--config names the gateway's stores/);
    writeFileSync(join(dir, "bad-keys.json"), "[1, 2]");
    await expect(startExplorer({ store: join(dir, "audit.db"), publicKeys: join(dir, "bad-keys.json") })).rejects.toThrow(/public key set/);
  });

  it("on a port in use says so in one line, and a second try on a free port then serves", async () => {
    await serving({ store: join(dir, "audit.db") }, async (handle) => {
      const port = Number(new URL(handle.url).port);
      const refused = startExplorer({ store: join(dir, "audit.db"), port }, () => undefined);
      await expect(refused).rejects.toThrow(new InvalidInput(`cannot listen on 127.0.0.1:${String(port)}: the port is in use (another explorer?); choose another port`));
      // The stores the refused run opened were closed: the log opens again and serves.
      await serving({ store: join(dir, "audit.db") }, async (again, api) => {
        expect((await api("session", again.token)).status).toBe(200);
      });
    });
  });
});

describePostgres("agentcap audit explore over a Postgres audit log", () => {
  let schema: TestSchema;
  beforeAll(async () => {
    schema = await createTestSchema(databaseUrl as string);
    const audit = await openAuditStore({ kind: "postgres", url: databaseUrl as string, schema: schema.name });
    for (const [, event] of named) await audit.write(event);
    await audit.close();
  });
  afterAll(async () => {
    await schema.drop();
  });

  it("reads the schema's log with the run's token", async () => {
    await serving({ databaseUrl: databaseUrl as string, schema: schema.name }, async (handle, api) => {
      const page = (await (await api("events?principal=alice&order=asc&limit=1000", handle.token)).json()) as TimelinePage;
      expect(page.events.length).toBe(named.filter(([, e]) => e.subject.mint.principal === "alice").length);
      expect(page.events.length).toBeGreaterThan(0);
    });
  });
});
