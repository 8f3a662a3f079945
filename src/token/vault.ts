/**
 * The credential vault: each principal's own secret for each origin (an
 * upstream MCP server, an HTTP API), sealed with a key held outside the
 * database, kept in the token store's database (see vault-sqlite.ts and
 * vault-postgres.ts), and opened only by a resource at the moment it sends
 * a request for that principal to that origin. A revoked principal's
 * credentials are not opened (the token store's revocation list is asked
 * first, as at every decision).
 */
import { validateHeaderValue } from "node:http";
import { InvalidInput, Revoked, systemClock, UnknownPrincipal, VaultKeyMismatch, VaultKeyMissing, type Capability, type CredentialSource } from "../kernel/index.js";
import { canonicalHttpUrl, type RevocationList } from "../kernel/internal.js";
import { secretOf, type VaultKey } from "./vault-key.js";
import { seal, unseal } from "./vault-seal.js";

/** One stored credential as the vault's table holds it. */
export interface VaultRow {
  readonly principal: string;
  readonly origin: string;
  readonly keyId: string;
  readonly sealed: string;
  readonly updatedAt: number;
}

/** The table behind a vault: one row per principal and origin. */
export interface VaultRows {
  get(principal: string, origin: string): Promise<VaultRow | null>;
  put(row: VaultRow): Promise<void>;
  delete(principal: string, origin: string): Promise<boolean>;
  all(): Promise<readonly VaultRow[]>;
  close(): Promise<void>;
}

/** A stored credential, described without its value. */
export interface CredentialEntry {
  readonly principal: string;
  readonly origin: string;
  /** The id of the key that sealed it. */
  readonly keyId: string;
  readonly updatedAt: number;
}

/** The vault: set and remove credentials, list them (never their values), and give a resource the one it attaches to a request. */
export interface CredentialVault extends CredentialSource {
  /** Stores `value` (sent as the Authorization header, such as "Bearer …") for `principal` at `origin`, replacing any. UnknownPrincipal when `knownPrincipal` refuses it. */
  set(principal: string, origin: string, value: string): Promise<void>;
  /** Removes the credential; false when there was none. */
  remove(principal: string, origin: string): Promise<boolean>;
  /** Every stored credential, without values. */
  list(): Promise<readonly CredentialEntry[]>;
  close(): Promise<void>;
}

/** How a vault is opened. */
export interface VaultOptions {
  /** The key credentials are sealed with (loadVaultKey); VaultKeyMissing without it. */
  readonly key: VaultKey | undefined;
  /** The token store (or another revocation list): a revoked principal's credentials are not opened. */
  readonly revocations?: RevocationList;
  /** Which principals exist, so a credential is never set for a mistyped one (UnknownPrincipal); any by default. */
  readonly knownPrincipal?: (principal: string) => boolean;
}

const MAX_PRINCIPAL = 256;
const MAX_VALUE = 8192;

/** The principal, checked; InvalidInput otherwise. */
function principalOf(value: unknown): string {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_PRINCIPAL) throw new InvalidInput(`principal must be a non-empty string of at most ${MAX_PRINCIPAL} characters`);
  return value;
}

/** The origin `value` names (scheme, host and port, as browsers write it); InvalidInput for a URL with more or anything else. */
export function credentialOrigin(value: unknown): string {
  if (typeof value !== "string") throw new InvalidInput('origin must be a string such as "https://api.example.com"');
  const url = canonicalHttpUrl(value);
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "" || /[?#]/.test(value)) {
    throw new InvalidInput(`origin ${JSON.stringify(value)} must be scheme, host and port only, such as "https://api.example.com": a credential is sent to every path of its origin`);
  }
  return url.origin;
}

/** The value, checked as a header value; the message never repeats it. */
function valueOf(value: unknown): string {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_VALUE) throw new InvalidInput(`a credential must be a non-empty string of at most ${MAX_VALUE} characters`);
  try {
    validateHeaderValue("authorization", value);
  } catch {
    throw new InvalidInput("a credential is sent as the Authorization header, so it must be one line of printable characters (such as \"Bearer …\"); this one is not");
  }
  return value;
}

/** A vault over `rows`, sealing with `options.key`. Throws VaultKeyMissing without a key. */
export function createVault(rows: VaultRows, options: VaultOptions): CredentialVault {
  if (options.key === undefined) throw new VaultKeyMissing("the credential vault needs its key (a key file or an environment variable); none is configured");
  const key = options.key;
  const secret = secretOf(key);
  const revocations = options.revocations ?? null;
  const known = options.knownPrincipal ?? (() => true);
  let closed = false;
  const open = () => {
    if (closed) throw new InvalidInput("the credential vault is closed");
  };
  return Object.freeze({
    async set(principal: string, origin: string, value: string): Promise<void> {
      open();
      const p = principalOf(principal);
      const o = credentialOrigin(origin);
      const v = valueOf(value);
      if (!known(p)) throw new UnknownPrincipal(`principal ${JSON.stringify(p)} is not one the configuration knows (policy.principals); no credential was stored`, p);
      await rows.put({ principal: p, origin: o, keyId: key.id, sealed: seal(secret, p, o, v), updatedAt: systemClock.now() });
    },
    async remove(principal: string, origin: string): Promise<boolean> {
      open();
      return rows.delete(principalOf(principal), credentialOrigin(origin));
    },
    async list(): Promise<readonly CredentialEntry[]> {
      open();
      return Object.freeze((await rows.all()).map((r) => Object.freeze({ principal: r.principal, origin: r.origin, keyId: r.keyId, updatedAt: r.updatedAt })));
    },
    async authorization(cap: Capability, origin: string): Promise<string | null> {
      open();
      const { principal, tenants, roles } = cap.mint;
      const o = credentialOrigin(origin);
      revocations?.refresh?.();
      const refusal = revocations?.mintRefusal({ id: principal, tenants, roles }, null) ?? null;
      if (refusal !== null) {
        throw new Revoked(`the credentials of principal ${principal} are not used: ${refusal}`, {
          capabilityId: cap.id,
          link: 0,
          linkId: cap.lineage[0]?.id ?? cap.id,
          rule: "revoked",
          because: "was revoked",
        });
      }
      const row = await rows.get(principal, o);
      if (row === null) return null;
      if (row.keyId !== key.id) {
        throw new VaultKeyMismatch(`the vault key does not match the key the credential of principal ${principal} for ${o} was sealed with; configure that key, or set the credential again`);
      }
      const value = unseal(secret, principal, o, row.sealed);
      if (value === null) throw new InvalidInput(`the credential of principal ${principal} for ${o} in the vault is damaged, or was moved there from another principal or origin; set it again`);
      return value;
    },
    close(): Promise<void> {
      if (closed) return Promise.resolve();
      closed = true;
      return rows.close();
    },
  });
}
