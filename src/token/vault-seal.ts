/**
 * Sealing one credential with AES-256-GCM (node:crypto). The principal and
 * origin it belongs to are the additional authenticated data: a sealed value
 * copied to another principal's or origin's row does not open there.
 */
import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from "node:crypto";
import { canonicalJson } from "../kernel/internal.js";

const IV_BYTES = 12;
const TAG_BYTES = 16;

function associated(principal: string, origin: string): Buffer {
  return Buffer.from(canonicalJson(["agentcap credential vault v1", principal, origin]), "utf8");
}

/** `value` sealed for `principal` at `origin`: base64 of IV, tag and ciphertext. */
export function seal(key: KeyObject, principal: string, origin: string, value: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(associated(principal, origin));
  const body = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64");
}

/** The value sealed for `principal` at `origin`, or null when it does not open (another key, another principal or origin, or altered). */
export function unseal(key: KeyObject, principal: string, origin: string, sealed: string): string | null {
  const bytes = Buffer.from(sealed, "base64");
  if (bytes.length < IV_BYTES + TAG_BYTES) return null;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(associated(principal, origin));
    decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
  } catch {
    return null;
  }
}
