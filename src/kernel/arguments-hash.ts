import { canonicalJson, sha256Hex } from "./content-hash.js";
import { snapshotPlainData } from "./plain-data.js";

/**
 * The SHA-256 of a call's arguments in canonical JSON: equal for equal data
 * however it was written, so an approval bound to it holds for exactly those
 * arguments. Throws InvalidInput for anything that is not plain data.
 */
export function argumentsHash(args: unknown): string {
  return sha256Hex(canonicalJson(snapshotPlainData(args, "arguments")));
}
