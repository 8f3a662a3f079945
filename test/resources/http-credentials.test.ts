import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAuditStore, type AuditStore } from "../../src/audit/index.ts";
import { createMint, InvalidInput, Revoked, VaultKeyMismatch, type Capability, type CredentialSource, type Grant } from "../../src/index.ts";
import { createHttpClient, type HttpClient } from "../../src/resources/http/client.ts";
import { generateVaultKey, openSqliteTokenStore, openSqliteVault, parseVaultKey, type CredentialVault, type TokenStore } from "../../src/token/index.ts";
import { installNetworkGuard, startServers, tableResolver, text, type TestServer } from "./http-fixtures.ts";

/*
 * Per-user credentials attached by the HTTP resource: each principal's own
 * secret for each origin, from a vault in the token store, put on the wire
 * at the moment a hop is sent. The servers record what arrived; the audit
 * log is a real SQLite file, searched byte by byte for the secrets.
 */

const ALICE_API = "Bearer alice-api-secret-5b1e0c";
const ALICE_OTHER = "Bearer alice-other-secret-93d2aa";
const BOB_API = "Bearer bob-api-secret-77f0e4";
const SECRETS = [ALICE_API, ALICE_OTHER, BOB_API].map((s) => s.slice("Bearer ".length));

let P = 0;
let api: TestServer;
let other: TestServer;
let closeServers: () => Promise<void>;
let guard: ReturnType<typeof installNetworkGuard>;
let dir: string;
let store: TokenStore;
let vault: CredentialVault;
let audit: AuditStore;
let client: HttpClient;
const asked: string[] = [];
const resolver = tableResolver({ "api.example.test": ["127.0.0.2"], "other.example.test": ["127.0.0.4"], "plain.example.test": ["127.0.0.4"] });
const apiUrl = (p: string) => `http://api.example.test:${P}${p}`;
const otherUrl = (p: string) => `http://other.example.test:${P}${p}`;

function grant(): Grant {
  const rule = (origin: string) => ({ origin, methods: ["GET", "POST"] as const, allowPrivateNetwork: true });
  return { http: [{ ...rule(`http://api.example.test:${P}`), pathPrefix: "/v1/" }, rule(`http://other.example.test:${P}`), rule(`http://plain.example.test:${P}`)] };
}

const capFor = (principal: string): Capability<{ readonly http: "GET" | "POST" }> =>
  createMint({ issuer: "credential-tests", policy: () => grant(), revocations: store }).issue({ id: principal });

/** Everything the audit log holds, as bytes of its file and as the rows queried back. */
async function auditText(): Promise<string> {
  const rows = await audit.query({ limit: 10_000 });
  const files = ["audit.db", "audit.db-wal"].map((f) => path.join(dir, f)).filter((f) => existsSync(f));
  return [JSON.stringify(rows), ...files.map((f) => readFileSync(f, "latin1"))].join("\n");
}

function expectNoSecret(value: unknown): void {
  const shown = typeof value === "string" ? value : JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? text(v) : v instanceof Error ? { own: Object.fromEntries(Object.entries(v)), message: v.message, stack: v.stack } : v));
  for (const s of SECRETS) expect(shown).not.toContain(s);
}

beforeAll(async () => {
  const started = await startServers(["127.0.0.2", "127.0.0.4"]);
  [api, other] = started.servers as [TestServer, TestServer];
  P = started.port;
  closeServers = started.close;
  guard = installNetworkGuard({});
  dir = mkdtempSync(path.join(tmpdir(), "agentcap-http-credentials-"));
  store = openSqliteTokenStore(path.join(dir, "tokens.db"));
  const key = parseVaultKey(generateVaultKey(), "test");
  vault = openSqliteVault(path.join(dir, "tokens.db"), { key, revocations: store });
  await vault.set("alice", `http://api.example.test:${P}`, ALICE_API);
  await vault.set("alice", `http://other.example.test:${P}`, ALICE_OTHER);
  await vault.set("bob", `http://api.example.test:${P}`, BOB_API);
  audit = await openAuditStore({ kind: "sqlite", path: path.join(dir, "audit.db") });
  const counting: CredentialSource = {
    authorization: (cap, origin, signal) => {
      asked.push(`${cap.mint.principal} ${origin}`);
      return vault.authorization(cap, origin, signal);
    },
  };
  client = createHttpClient({ resolver, timeoutMs: 2000, audit, credentials: counting });
});

afterAll(async () => {
  client.close();
  guard.restore();
  await closeServers();
  await vault.close();
  await store.close();
  await audit.close();
  rmSync(dir, { recursive: true, force: true });
});

const lastSeen = (server: TestServer) => server.requests.at(-1);

describe("credentials from the vault, attached by the HTTP resource", () => {
  it("sends each principal's own credential for the origin, and none where it has none", async () => {
    const res = await client.request(capFor("alice"), apiUrl("/v1/items"));
    expect(lastSeen(api)?.headers.authorization).toBe(ALICE_API);
    expectNoSecret(res);
    await client.request(capFor("bob"), apiUrl("/v1/items"));
    expect(lastSeen(api)?.headers.authorization).toBe(BOB_API);
    await client.request(capFor("carol"), apiUrl("/v1/items"));
    expect(lastSeen(api)?.headers.authorization).toBeUndefined();
    await client.request(capFor("alice"), `http://plain.example.test:${P}/x`);
    expect(lastSeen(other)?.headers.authorization).toBeUndefined();
  });

  it("replaces an Authorization header the caller gave for an origin with a stored credential", async () => {
    await client.request(capFor("alice"), apiUrl("/v1/items"), { headers: { Authorization: "Bearer from-the-model" } });
    expect(lastSeen(api)?.headers.authorization).toBe(ALICE_API);
  });

  it("on a redirect to another origin, sends that origin's credential and never the first one's", async () => {
    const to = otherUrl("/landing");
    const res = await client.request(capFor("alice"), apiUrl(`/v1/redirect?status=302&to=${encodeURIComponent(to)}`));
    expect(res.redirects).toHaveLength(1);
    expect(lastSeen(other)?.headers.authorization).toBe(ALICE_OTHER);
    const plain = `http://plain.example.test:${P}/landing`;
    await client.request(capFor("alice"), apiUrl(`/v1/redirect?status=307&to=${encodeURIComponent(plain)}`));
    expect(lastSeen(other)?.url).toBe("/landing");
    expect(lastSeen(other)?.headers.authorization).toBeUndefined();
  });

  it("a denied request looks up no credential and sends nothing", async () => {
    const before = { asked: asked.length, seen: api.requests.length };
    await expect(client.request(capFor("alice"), apiUrl("/admin"))).rejects.toThrow(/does not grant GET/);
    expect(asked.length).toBe(before.asked);
    expect(api.requests.length).toBe(before.seen);
  });

  it("the credential is in no response, error or audit row, even when the server does not answer in time", async () => {
    const failed = await client.request(capFor("alice"), otherUrl("/slow")).catch((e: unknown) => e);
    expectNoSecret(failed);
    expectNoSecret(await client.request(capFor("bob"), apiUrl("/v1/hello"), { method: "POST", body: "payload" }));
    expectNoSecret(await auditText());
    const events = await audit.query({ action: "http.request", limit: 10_000 });
    expect(events.length).toBeGreaterThan(5);
  }, 10_000);

  it("revoking a principal stops its credentials: nothing is sent, and the error holds no secret", async () => {
    const alice = capFor("alice");
    const bobBefore = api.requests.length;
    const unbound = createMint({ issuer: "another", policy: () => grant() }).issue({ id: "alice" });
    await store.revoke({ principal: "alice" }, { reason: "left" });
    const byCap = await client.request(alice, apiUrl("/v1/items")).catch((e: unknown) => e);
    expect(byCap).toBeInstanceOf(Revoked);
    // A capability minted without the token store still reaches the vault, which asks the store itself.
    const byVault = await client.request(unbound, apiUrl("/v1/items")).catch((e: unknown) => e);
    expect(byVault).toBeInstanceOf(Revoked);
    expect(api.requests.length).toBe(bobBefore);
    expectNoSecret([byCap, byVault]);
    expectNoSecret(await auditText());
    await store.reinstate({ principal: "alice" });
  });

  it("a vault with another key fails the request with VaultKeyMismatch before anything is sent", async () => {
    const wrong = openSqliteVault(path.join(dir, "tokens.db"), { key: parseVaultKey(generateVaultKey(), "test"), revocations: store });
    const c = createHttpClient({ resolver, timeoutMs: 2000, audit, credentials: wrong });
    try {
      const before = api.requests.length;
      const error = await c.request(capFor("bob"), apiUrl("/v1/items")).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(VaultKeyMismatch);
      expect(api.requests.length).toBe(before);
      expectNoSecret(error);
    } finally {
      c.close();
      await wrong.close();
    }
  });

  it("refuses credentials that are not a credential source", () => {
    expect(() => createHttpClient({ credentials: {} as CredentialSource })).toThrow(InvalidInput);
    expect(() => createHttpClient({ credentials: {} as CredentialSource })).toThrow(/authorization\(capability, origin\)/);
  });
});
