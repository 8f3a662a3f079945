import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidInput, Revoked, UnknownPrincipal, VaultKeyMismatch, VaultKeyMissing } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import {
  generateVaultKey,
  loadVaultKey,
  openPostgresTokenStore,
  openPostgresVault,
  openSqliteTokenStore,
  openSqliteVault,
  parseVaultKey,
  type CredentialVault,
  type TokenStore,
  type VaultKey,
} from "../../src/token/index.ts";
import { seal, unseal } from "../../src/token/vault-seal.ts";
import { secretOf } from "../../src/token/vault-key.ts";
import { databaseUrl, postgresSkipReason } from "../support/postgres.ts";

/*
 * The same suite against both engines: a vault and a token store on one
 * SQLite file or one Postgres schema, each opened twice where a test needs
 * two processes. Secrets are distinctive strings, so a search of every
 * stored byte, message and listing for them proves they are not there.
 */

const SECRET = "Bearer sk-live-7f3a9c1d5e-vault-test-secret";
const OTHER_SECRET = "Bearer sk-live-0000-bob-only";
const API = "https://api.example.com";

interface Engine {
  readonly name: string;
  readonly skip: boolean;
  openStore(): Promise<TokenStore>;
  openVault(key: VaultKey | undefined, revocations?: TokenStore, knownPrincipal?: (p: string) => boolean): Promise<CredentialVault>;
  /** Every stored row as text, as someone who copied the database would see it. */
  dump(): Promise<string>;
  /** The sealed values stored. */
  sealed(): Promise<string[]>;
  /** Runs SQL on the vault's table directly, as someone with write access to the database could. */
  tamper(sql: (table: string) => string): Promise<void>;
  cleanup(): Promise<void>;
}

function sqliteEngine(): Engine {
  const dir = mkdtempSync(path.join(tmpdir(), "agentcap-vault-"));
  const file = path.join(dir, "tokens.db");
  const raw = <T>(f: (db: Database.Database) => T): T => {
    const db = new Database(file);
    try {
      return f(db);
    } finally {
      db.close();
    }
  };
  return {
    name: "SQLite",
    skip: false,
    openStore: () => Promise.resolve(openSqliteTokenStore(file)),
    openVault: (key, revocations, knownPrincipal) =>
      new Promise((resolve) => {
        resolve(openSqliteVault(file, { key, ...(revocations ? { revocations } : {}), ...(knownPrincipal ? { knownPrincipal } : {}) }));
      }),
    dump: () => Promise.resolve(JSON.stringify(raw((db) => db.prepare("SELECT * FROM agentcap_credentials").all())) + readFileSync(file, "latin1")),
    sealed: () => Promise.resolve(raw((db) => db.prepare<[], string>("SELECT sealed FROM agentcap_credentials").pluck().all())),
    tamper: (sql) => {
      raw((db) => db.exec(sql("agentcap_credentials")));
      return Promise.resolve();
    },
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}

function postgresEngine(): Engine {
  const schema = `agentcap_vault_${Math.random().toString(16).slice(2, 10)}`;
  const url = databaseUrl ?? "";
  const admin = async <T>(f: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return await f(c);
    } finally {
      await c.end();
    }
  };
  return {
    name: "Postgres",
    skip: postgresSkipReason !== null,
    openStore: () => openPostgresTokenStore({ connectionString: url, schema }),
    openVault: (key, revocations, knownPrincipal) =>
      openPostgresVault({ connectionString: url, schema, key, ...(revocations ? { revocations } : {}), ...(knownPrincipal ? { knownPrincipal } : {}) }),
    dump: () => admin(async (c) => JSON.stringify((await c.query(`SELECT * FROM ${schema}.credentials`)).rows)),
    sealed: () => admin(async (c) => (await c.query<{ sealed: string }>(`SELECT sealed FROM ${schema}.credentials`)).rows.map((r) => r.sealed)),
    tamper: async (sql) => {
      await admin((c) => c.query(sql(`${schema}.credentials`)));
    },
    cleanup: async () => {
      await admin((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
    },
  };
}

for (const make of [sqliteEngine, postgresEngine]) {
  const engine = make();
  describe.skipIf(engine.skip)(`credential vault (${engine.name})`, () => {
    const key = parseVaultKey(generateVaultKey(), "test");
    let store: TokenStore;
    let vault: CredentialVault;
    const mint = () => createMint({ issuer: "test", policy: () => ({ tools: ["t"] }), revocations: store });
    beforeAll(async () => {
      store = await engine.openStore();
      vault = await engine.openVault(key, store);
    });
    afterAll(async () => {
      await vault.close();
      await store.close();
      await engine.cleanup();
    });

    it("gives a principal's credential for its origin only, and stores neither the value nor a way to it without the key", async () => {
      await vault.set("alice", API, SECRET);
      await vault.set("bob", "https://api.example.com:443/", OTHER_SECRET);
      const m = mint();
      const alice = m.issue({ id: "alice" });
      expect(await vault.authorization(alice, API)).toBe(SECRET);
      expect(await vault.authorization(m.issue({ id: "bob" }), API)).toBe(OTHER_SECRET);
      expect(await vault.authorization(alice, "https://other.example.com")).toBeNull();
      expect(await vault.authorization(alice, "http://api.example.com")).toBeNull();
      expect(await vault.authorization(m.issue({ id: "carol" }), API)).toBeNull();
      const listed = await vault.list();
      expect(listed.map((e) => [e.principal, e.origin, e.keyId])).toEqual([
        ["alice", API, key.id],
        ["bob", API, key.id],
      ]);
      expect(JSON.stringify(listed)).not.toContain("sk-live");
      const stored = await engine.dump();
      expect(stored).not.toContain("sk-live");
      expect(JSON.stringify(key)).toBe(JSON.stringify({ id: key.id }));
    });

    it("a sealed value moved to another principal's or origin's row does not open there (the principal and origin are authenticated data)", async () => {
      await vault.set("mallory", API, "Bearer mallory-own");
      await vault.set("mallory", "https://evil.example.com", "Bearer mallory-evil");
      await engine.tamper((t) => `UPDATE ${t} SET sealed = (SELECT sealed FROM ${t} WHERE principal = 'alice' AND origin = '${API}') WHERE principal = 'mallory' AND origin = '${API}'`);
      await engine.tamper((t) => `UPDATE ${t} SET sealed = (SELECT sealed FROM ${t} WHERE principal = 'alice' AND origin = '${API}') WHERE principal = 'mallory' AND origin = 'https://evil.example.com'`);
      const mallory = mint().issue({ id: "mallory" });
      for (const origin of [API, "https://evil.example.com"]) {
        const error = await vault.authorization(mallory, origin).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidInput);
        expect((error as Error).message).toMatch(/damaged, or was moved there from another principal or origin/);
        expect((error as Error).message).not.toContain("sk-live");
      }
      expect(await vault.authorization(mint().issue({ id: "alice" }), API)).toBe(SECRET);
    });

    it("another key cannot open a credential: VaultKeyMismatch says the key does not match, and shows no ciphertext", async () => {
      const sealed = await engine.sealed();
      expect(sealed.length).toBeGreaterThan(0);
      const wrong = await engine.openVault(parseVaultKey(generateVaultKey(), "test"), store);
      try {
        const error = await wrong.authorization(mint().issue({ id: "alice" }), API).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(VaultKeyMismatch);
        expect((error as VaultKeyMismatch).code).toBe("ERR_VAULT_KEY_MISMATCH");
        expect((error as Error).message).toMatch(/the vault key does not match the key the credential of principal alice for https:\/\/api\.example\.com was sealed with/);
        for (const value of sealed) expect((error as Error).message).not.toContain(value.slice(0, 16));
        expect((error as Error).message).not.toContain("sk-live");
      } finally {
        await wrong.close();
      }
    });

    it("revoking a principal stops its credentials, in this process and in another sharing the store; reinstating lets them be used again", async () => {
      const otherStore = await engine.openStore();
      const otherVault = await engine.openVault(key, otherStore);
      try {
        const elsewhere = createMint({ issuer: "test", policy: () => ({ tools: ["t"] }), revocations: otherStore }).issue({ id: "alice" });
        expect(await otherVault.authorization(elsewhere, API)).toBe(SECRET);
        await store.revoke({ principal: "alice" }, { reason: "left" });
        const here = vault.authorization(mint().issue({ id: "bob" }), API);
        await expect(here).resolves.toBe(OTHER_SECRET);
        const refused = await otherVault.authorization(elsewhere, API).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(Revoked);
        expect((refused as Error).message).not.toContain("sk-live");
        await store.reinstate({ principal: "alice" });
        await otherStore.list();
        const fresh = createMint({ issuer: "test", policy: () => ({ tools: ["t"] }), revocations: otherStore }).issue({ id: "alice" });
        expect(await otherVault.authorization(fresh, API)).toBe(SECRET);
      } finally {
        await otherVault.close();
        await otherStore.close();
      }
    });

    it("removes a credential, and says when there was none", async () => {
      await vault.set("dave", API, "Bearer dave");
      expect(await vault.remove("dave", API)).toBe(true);
      expect(await vault.remove("dave", API)).toBe(false);
      expect(await vault.authorization(mint().issue({ id: "dave" }), API)).toBeNull();
    });

    it("refuses a principal the configuration does not know (UnknownPrincipal), storing nothing", async () => {
      const strict = await engine.openVault(key, store, (p) => p === "alice");
      try {
        const error = await strict.set("alcie", API, "Bearer typo").catch((e: unknown) => e);
        expect(error).toBeInstanceOf(UnknownPrincipal);
        expect(error).toMatchObject({ code: "ERR_UNKNOWN_PRINCIPAL", principal: "alcie" });
        expect((await strict.list()).some((e) => e.principal === "alcie")).toBe(false);
      } finally {
        await strict.close();
      }
    });

    it("cannot be opened without a key (VaultKeyMissing)", async () => {
      await expect(engine.openVault(undefined)).rejects.toThrow(VaultKeyMissing);
    });
  });
}

describe("vault inputs", () => {
  const key = parseVaultKey(generateVaultKey(), "test");
  const vault = openSqliteVault(":memory:", { key });
  afterAll(() => vault.close());

  it.each([
    ["an origin with a path", "alice", "https://api.example.com/v1", SECRET, /scheme, host and port only/],
    ["an origin with a query", "alice", "https://api.example.com/?a=1", SECRET, /scheme, host and port only/],
    ["an origin with userinfo", "alice", "https://u:p@api.example.com", SECRET, /userinfo|user/i],
    ["a non-http origin", "alice", "ftp://api.example.com", SECRET, /http/],
    ["an empty principal", "", API, SECRET, /principal must be a non-empty string/],
    ["a value with a newline (header injection)", "alice", API, "Bearer a\r\nX-Admin: 1", /one line of printable characters/],
    ["an empty value", "alice", API, "", /non-empty string/],
  ])("refuses %s with InvalidInput, never repeating the value", async (_what, principal, origin, value, message) => {
    const error = await vault.set(principal, origin, value).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInput);
    expect((error as Error).message).toMatch(message);
    if (value.length > 0) expect((error as Error).message).not.toContain(value);
  });

  it("loads a key from a file or an environment variable; a missing one is VaultKeyMissing, a bad one InvalidInput that does not repeat it", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "agentcap-vault-key-"));
    try {
      const file = path.join(dir, "vault.key");
      const text = generateVaultKey();
      writeFileSync(file, `${text}\n`);
      const fromFile = loadVaultKey({ file });
      expect(loadVaultKey({ fromEnv: "VAULT_KEY" }, { VAULT_KEY: text }).id).toBe(fromFile.id);
      expect(loadVaultKey({ fromEnv: "VAULT_KEY" }, { VAULT_KEY: Buffer.from(text, "base64").toString("hex") }).id).toBe(fromFile.id);
      expect(() => loadVaultKey({ file: path.join(dir, "none.key") })).toThrow(VaultKeyMissing);
      expect(() => loadVaultKey({ file: path.join(dir, "none.key") })).toThrow(/agentcap credentials keygen/);
      expect(() => loadVaultKey({ fromEnv: "VAULT_KEY" }, {})).toThrow(VaultKeyMissing);
      expect(() => loadVaultKey({ fromEnv: "VAULT_KEY" }, { VAULT_KEY: "  " })).toThrow(VaultKeyMissing);
      const short = "c2hvcnQta2V5LXRoYXQtaXMtbm90LTMyLWJ5dGVz";
      writeFileSync(file, short);
      expect(() => loadVaultKey({ file })).toThrow(InvalidInput);
      expect(() => loadVaultKey({ file })).toThrow(/is not a key: it must be 32 bytes/);
      expect(() => loadVaultKey({ file })).not.toThrow(new RegExp(short));
      expect(() => secretOf({ id: fromFile.id })).toThrow(/vault key from loadVaultKey/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("sealing (property)", () => {
  const secret = secretOf(parseVaultKey(generateVaultKey(), "test"));
  const other = secretOf(parseVaultKey(generateVaultKey(), "test"));
  it("a value opens only for the principal, origin and key it was sealed with", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), fc.string(), (p1, o1, p2, o2, value) => {
        const sealed = seal(secret, p1, o1, value);
        expect(unseal(secret, p1, o1, sealed)).toBe(value);
        expect(unseal(other, p1, o1, sealed)).toBeNull();
        if (p1 !== p2 || o1 !== o2) expect(unseal(secret, p2, o2, sealed)).toBeNull();
      }),
      { numRuns: 300 },
    );
  });

  it("a sealed value with any one byte changed does not open", () => {
    const sealed = Buffer.from(seal(secret, "alice", API, SECRET), "base64");
    for (let i = 0; i < sealed.length; i++) {
      const altered = Buffer.from(sealed);
      altered[i] = (altered[i] ?? 0) ^ 1;
      expect(unseal(secret, "alice", API, altered.toString("base64"))).toBeNull();
    }
  });
});
