/**
 * The credential vault's key: 32 random bytes for AES-256-GCM, kept outside
 * the database (a file or an environment variable), so a copy of the
 * database alone reveals no credential. A loaded key is an opaque object
 * showing only its id; the bytes stay in this module.
 */
import { createHmac, createSecretKey, randomBytes, type KeyObject } from "node:crypto";
import { existsSync } from "node:fs";
import { InvalidInput, VaultKeyMissing } from "../kernel/index.js";
import { readBoundedText } from "../kernel/internal.js";

/** A loaded vault key. `id` names it (a keyed hash, not the key), so a credential says which key sealed it. */
export interface VaultKey {
  readonly id: string;
}

/** Where the key is: a file as `agentcap credentials keygen` writes it, or an environment variable holding the same text. */
export type VaultKeySource = { readonly file: string } | { readonly fromEnv: string };

const secrets = new WeakMap<VaultKey, KeyObject>();
const KEY_BYTES = 32;
const FORMS = "32 bytes written as base64 (44 characters) or hex (64 digits), as `agentcap credentials keygen` writes it";

/** A new key's text: 32 random bytes in base64. */
export function generateVaultKey(): string {
  return randomBytes(KEY_BYTES).toString("base64");
}

/** The key `text` holds; InvalidInput (naming `where`, never the text) when it is not one. */
export function parseVaultKey(text: string, where: string): VaultKey {
  const t = text.trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, "hex") : /^[A-Za-z0-9+/]{43}=$/.test(t) ? Buffer.from(t, "base64") : null;
  if (bytes?.length !== KEY_BYTES) throw new InvalidInput(`the vault key in ${where} is not a key: it must be ${FORMS}`);
  const id = createHmac("sha256", bytes).update("agentcap credential vault key id").digest("hex").slice(0, 16);
  const key: VaultKey = Object.freeze({ id });
  secrets.set(key, createSecretKey(bytes));
  bytes.fill(0);
  return key;
}

/**
 * Loads the vault key from a file or an environment variable. Throws
 * VaultKeyMissing when the file does not exist or the variable is unset or
 * empty, InvalidInput when what is there is not a key.
 */
export function loadVaultKey(source: VaultKeySource, env: NodeJS.ProcessEnv = process.env): VaultKey {
  if ("file" in source) {
    if (!existsSync(source.file)) throw new VaultKeyMissing(`the vault key file ${source.file} does not exist; create it with \`agentcap credentials keygen --out ${source.file}\``);
    return parseVaultKey(readBoundedText(source.file, 1024, "vault key file"), `file ${source.file}`);
  }
  const text = env[source.fromEnv];
  if (text === undefined || text.trim() === "") throw new VaultKeyMissing(`the environment variable ${source.fromEnv}, which should hold the vault key, is not set`);
  return parseVaultKey(text, `environment variable ${source.fromEnv}`);
}

/** The secret of a loaded key; InvalidInput for anything else. */
export function secretOf(key: unknown): KeyObject {
  const secret = typeof key === "object" && key !== null ? secrets.get(key as VaultKey) : undefined;
  if (secret === undefined) throw new InvalidInput("key must be a vault key from loadVaultKey or parseVaultKey");
  return secret;
}
