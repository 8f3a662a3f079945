import { InvalidInput } from "../kernel/index.js";
import { checkPublicKey, type PublicKeys } from "./biscuit.js";

/** Issuer public keys by root key id: a Map, or a record keyed by the id in decimal (as in a JSON key file). */
export type PublicKeySet = ReadonlyMap<number, string> | Readonly<Record<string, string>>;

const MAX_KEY_ID = 0xffffffff;

/** Validates a root key id: Biscuit carries it as an unsigned 32-bit integer. */
export function checkKeyId(id: unknown): number {
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_KEY_ID) {
    throw new InvalidInput(`key id must be an integer from 0 to ${MAX_KEY_ID}; got ${String(id)}`);
  }
  return id;
}

/** Normalizes and validates a public key set; throws InvalidInput naming the bad id or key. */
export function publicKeyMap(keys: PublicKeySet): PublicKeys {
  if (typeof keys !== "object" || (keys as unknown) === null) throw new InvalidInput("publicKeys must map key ids to public keys (ed25519/<hex>)");
  const entries: [unknown, unknown][] = keys instanceof Map ? [...(keys as ReadonlyMap<unknown, unknown>)] : Object.entries(keys);
  if (entries.length === 0) throw new InvalidInput("publicKeys is empty: a verifier needs at least one issuer public key");
  const out = new Map<number, string>();
  for (const [rawId, key] of entries) {
    const id = checkKeyId(typeof rawId === "string" && /^\d{1,10}$/.test(rawId) ? Number(rawId) : rawId);
    if (typeof key !== "string") throw new InvalidInput(`public key for key id ${id} must be a string such as ed25519/<hex>`);
    checkPublicKey(key);
    out.set(id, key);
  }
  return out;
}
