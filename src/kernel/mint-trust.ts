import { authorize, check, nodeOf, type Capability } from "./capability.js";
import type { Decision, Denied } from "./decision.js";
import { InvalidInput } from "./errors.js";
import type { CheckOptions, UseOptions } from "./evaluation.js";
import type { Request } from "./request.js";

/*
 * Minting is an authority too: `createMint` is a function any code in the
 * process can call, so a resource or a dispatcher can be told which mints'
 * roots it accepts (`mints: [mint.id]`). A capability whose root another mint
 * issued is then denied at its first decision, as its root's doing, before
 * anything is looked at, and the denial is recorded like any other.
 */

/** The mints a resource or dispatcher accepts roots from, or null to accept any (each event still names its root's mint). */
export type TrustedMints = ReadonlySet<string> | null;

const MINT_ID = /^(mint:[0-9a-f-]{36}|key:\d{1,10}:[0-9a-f]{16})$/;

/** Reads a factory's `mints` option: a list of mint ids (`Mint.id`); InvalidInput naming `factory` for anything else. */
export function trustedMintsOption(options: unknown, factory: string): TrustedMints {
  if (typeof options !== "object" || options === null || !Object.hasOwn(options, "mints")) return null;
  const mints: unknown = (options as { mints: unknown }).mints;
  if (mints === undefined) return null;
  if (!Array.isArray(mints) || mints.length === 0 || !mints.every((m) => typeof m === "string" && MINT_ID.test(m))) {
    throw new InvalidInput(`${factory}: mints must be a non-empty list of mint ids (a Mint's id, such as mint.id, or keyMintId(keyId, publicKey))`);
  }
  return new Set(mints as string[]);
}

/** The denial of a capability whose root a mint outside `trusted` issued, or null. Throws NotACapability for anything else. */
export function untrustedMint(cap: Capability, trusted: TrustedMints): Denied | null {
  const node = nodeOf(cap);
  if (trusted === null || trusted.has(node.mint.mintId)) return null;
  const root = node.chain[0] ?? node;
  const because = "was minted by a mint this resource does not trust";
  return Object.freeze({
    allowed: false,
    capabilityId: node.id,
    code: "ERR_CAPABILITY_DENIED",
    link: 0,
    linkId: root.id,
    rule: "mint",
    because,
    reason: `root capability ${root.id} (minted for ${node.mint.principal} by ${node.mint.mintId}) ${because}`,
  });
}

/** `check`, refusing first a root from a mint outside `trusted`. */
export function checkTrusted(trusted: TrustedMints, cap: Capability, request: Request, options?: CheckOptions): Decision {
  return untrustedMint(cap, trusted) ?? check(cap, request, options);
}

/** `authorize`, refusing first (and charging nothing for) a root from a mint outside `trusted`. */
export function authorizeTrusted(trusted: TrustedMints, cap: Capability, request: Request, options?: UseOptions): Decision {
  return untrustedMint(cap, trusted) ?? authorize(cap, request, options);
}
