/**
 * Capabilities as Biscuit tokens: a mint that can sign, `toToken` for a
 * capability, offline `attenuate` of a token string, and `verify` back into a
 * kernel capability whose chain mirrors the token's blocks.
 *
 * Signing keys live only in this module's WeakMap, keyed by root capability:
 * nothing reachable from a capability leads to a key.
 */
import { randomUUID } from "node:crypto";
import { appendTokenLink, compileConditions, createTokenRoot, deadDenial, rootOf, type LedgerCharge } from "../kernel/internal.js";
import {
  createMint,
  denialError,
  Expired,
  InvalidInput,
  InvalidToken,
  parseGrant,
  Revoked,
  systemClock,
  type Capability,
  type Clock,
  type Grant,
  type LinkSummary,
  type Mint,
  type MintOptions,
  type MintRecord,
} from "../kernel/index.js";
import { appendBlocks, issueToken, openToken, publicKeyOf, renderBlock, sealToken, type DatalogCode, type PublicKeys } from "./biscuit.js";
import { blockJsonOf, compileBlock, decodeBlock, encodeBlock, RESERVED_LABELS, type BlockData } from "./block.js";
import { checkKeyId, publicKeyMap, type PublicKeySet } from "./keys.js";
import type { TokenStore } from "./store.js";

interface SigningRoot {
  readonly signingKey: string;
  readonly keyId: number;
  readonly publicKey: string;
}

interface VerifiedRoot {
  readonly token: string;
  readonly keys: PublicKeys;
  /** Index and id of the link the token ends at; links after it were added in this process. */
  readonly depth: number;
  readonly leafId: string;
}

const signingRoots = new WeakMap<Capability, SigningRoot>();
const verifiedRoots = new WeakMap<Capability, VerifiedRoot>();
const tokenCache = new WeakMap<Capability, { plain?: string; sealed?: string }>();

/** Options of a mint whose root capabilities can become tokens. */
export interface TokenMintOptions<In> extends MintOptions<In> {
  /** Ed25519 private key, `ed25519-private/<hex>`, from `generateKeyPair` or `agentcap token keygen`. */
  readonly signingKey: string;
  /** Root key id written into every token, so verifiers can pick the public key during rotation. */
  readonly keyId: number;
}

/** A mint whose roots can be serialized with `toToken`, signed with its key. */
export interface TokenMint<In> extends Mint<In> {
  /** Public key verifiers need, `ed25519/<hex>`. */
  readonly publicKey: string;
  readonly keyId: number;
}

/** Creates a mint that remembers, for each root it issues, the key to sign its tokens with. The key never becomes reachable from a capability. */
export function createTokenMint<In = unknown>(options: TokenMintOptions<In>): TokenMint<In> {
  const { signingKey } = options;
  const keyId = checkKeyId(options.keyId);
  const publicKey = publicKeyOf(signingKey);
  // The kernel mint never sees the key; only the roots it issues are remembered here.
  const mint = createMint<In>({ ...options, signingKey: undefined, keyId: undefined } as MintOptions<In>);
  const remember = <C extends Capability>(cap: C): C => {
    signingRoots.set(cap, Object.freeze({ signingKey, keyId, publicKey }));
    return cap;
  };
  const tokenMint: TokenMint<In> = {
    issuer: mint.issuer,
    publicKey,
    keyId,
    issue: (principal, opts) => remember(mint.issue(principal, opts)),
    authenticate: async (incoming, opts) => remember(await mint.authenticate(incoming, opts)),
  };
  return Object.freeze(tokenMint);
}

function compiled(data: BlockData): DatalogCode {
  const json = encodeBlock(data);
  return compileBlock(json, decodeBlock(json, data.kind === "root" ? 0 : 1)).code;
}

function linkBlock(link: LinkSummary): BlockData {
  if (link.grant !== null) return { v: 1, kind: "narrow", id: link.id, grant: link.grant };
  if (link.revocable) {
    // Reserved labels attribute events inside this process; the process that verifies the token labels its own caretakers.
    const labels = Object.fromEntries(Object.entries(link.labels).filter(([k]) => !RESERVED_LABELS.includes(k)));
    return { v: 1, kind: "revocable", id: link.id, labels };
  }
  return { v: 1, kind: "restrict", id: link.id, conditions: link.conditions };
}

/**
 * Serializes `cap` as a Biscuit token: the authority block holds the root
 * grant and mint record, each further link one attenuation block. Works for
 * capabilities from a token mint and for verified tokens (and what was
 * derived from them in this process). The same capability always gives the
 * same token, so its blocks' uses and budgets stay one account.
 */
export function toToken(cap: Capability, options?: { readonly seal?: boolean }): string {
  const dead = deadDenial(cap);
  if (dead !== null) throw denialError(dead);
  const seal = options?.seal === true;
  const cached = tokenCache.get(cap) ?? {};
  const hit = seal ? cached.sealed : cached.plain;
  if (hit !== undefined) return hit;
  const root = rootOf(cap);
  const lineage = cap.lineage;
  const signing = signingRoots.get(root);
  const verified = verifiedRoots.get(root);
  let token: string;
  let keys: PublicKeys;
  if (signing !== undefined) {
    const first = lineage[0] as LinkSummary;
    const authority = compiled({ v: 1, kind: "root", id: first.id, keyId: signing.keyId, mint: cap.mint, grant: first.grant as Grant });
    token = issueToken(signing.signingKey, signing.keyId, authority, lineage.slice(1).map((l) => compiled(linkBlock(l))));
    keys = new Map([[signing.keyId, signing.publicKey]]);
  } else if (verified !== undefined && lineage[verified.depth]?.id === verified.leafId) {
    const extra = lineage.slice(verified.depth + 1);
    token = extra.length === 0 ? verified.token : appendBlocks(verified.token, verified.keys, extra.map((l) => compiled(linkBlock(l))));
    keys = verified.keys;
  } else {
    throw new InvalidInput("this capability's root was not minted with a signing key; mint it with createTokenMint, or verify it from a token");
  }
  if (seal) token = sealToken(token, keys);
  tokenCache.set(cap, { ...cached, [seal ? "sealed" : "plain"]: token });
  return token;
}

/** Options of offline attenuation: the issuers' public keys (no signing key is needed). */
export interface AttenuateOptions {
  /** biscuit-wasm 0.6 can only open a token by checking its signatures, so attenuation needs the public keys. */
  readonly publicKeys: PublicKeySet;
  /** Seal the result: no further attenuation. */
  readonly seal?: boolean;
}

/** Appends one block allowing only what `grant` allows; the result never allows more than `token`. Throws InvalidToken for a bad or sealed token. */
export function attenuate(token: string, grant: Grant, options: AttenuateOptions): string {
  const keys = publicKeyMap(options.publicKeys);
  const block = compiled({ v: 1, kind: "narrow", id: randomUUID(), grant: parseGrant(grant) });
  const next = appendBlocks(token, keys, [block]);
  return options.seal === true ? sealToken(next, keys) : next;
}

/** What `verify` needs: the issuers' public keys by key id, the shared store, and the clock expiry is checked against. */
export interface VerifyOptions {
  readonly publicKeys: PublicKeySet;
  readonly store: TokenStore;
  readonly clock?: Clock;
}

/** Summary of one verified block: its link data and revocation id. */
export interface VerifiedBlock {
  readonly index: number;
  readonly revocationId: string;
  readonly data: BlockData;
}

/**
 * Parses and checks a token's signatures and that every block's checks are
 * exactly those compiled from the link data it carries; returns the blocks.
 * Says nothing about revocation or expiry. Throws InvalidToken.
 */
export function readToken(token: string, publicKeys: PublicKeySet): readonly VerifiedBlock[] {
  const keys = publicKeyMap(publicKeys);
  const opened = openToken(token, keys);
  const ids = new Set<string>();
  return opened.blocks.map((source, index): VerifiedBlock => {
    const json = blockJsonOf(source, index);
    const data = decodeBlock(json, index);
    if (renderBlock(compileBlock(json, data).code) !== source) {
      throw new InvalidToken(`${index === 0 ? "authority block" : `block ${index}`}'s checks are not the ones compiled from the link it declares`);
    }
    // Link ids name links in revocations and audit lineages: one id for two links would merge their records.
    if (ids.has(data.id)) throw new InvalidToken(`block ${index} repeats the link id ${data.id} of an earlier block`);
    ids.add(data.id);
    if (data.kind === "root" && data.keyId !== opened.keyId) {
      throw new InvalidToken(`authority block names key id ${data.keyId} but the token is signed under key id ${opened.keyId}`);
    }
    return { index, revocationId: opened.revocationIds[index] ?? "", data };
  });
}

/** `readToken`, then refuses a token with a revoked or expired block. Throws InvalidToken, Revoked or Expired. */
export function inspectVerified(token: string, options: VerifyOptions): readonly VerifiedBlock[] {
  const blocks = readToken(token, options.publicKeys);
  const leaf = blocks[blocks.length - 1] as VerifiedBlock;
  const details = (b: VerifiedBlock, rule: string, because: string) => ({ capabilityId: leaf.data.id, link: b.index, linkId: b.data.id, rule, because });
  options.store.refresh?.();
  for (const b of blocks) {
    const reason = options.store.revokedReason(b.revocationId, b.data.id);
    if (reason !== null) throw new Revoked(`token block ${b.index} (${b.data.id}) was revoked: ${reason}`, details(b, "revoked", "was revoked"));
  }
  const now = (options.clock ?? systemClock).now();
  for (const b of blocks) {
    const e = b.data.kind === "root" || b.data.kind === "narrow" ? b.data.grant.expiresAt : b.data.kind === "restrict" ? b.data.conditions.expiresAt : undefined;
    if (e !== undefined && now >= e) throw new Expired(`token block ${b.index} (${b.data.id}) expired at ${new Date(e).toISOString()}`, details(b, "expiresAt", `expired at ${new Date(e).toISOString()}`));
  }
  return blocks;
}

/**
 * Verifies a token and returns the kernel capability it stands for: one link
 * per block, each with the id the block carries, revocation and uses kept in
 * `store` under the block's revocation id. Its decisions equal the token's.
 */
export function verify(token: string, options: VerifyOptions): Capability {
  return verified(token, options).cap;
}

function verified(token: string, options: VerifyOptions): { readonly cap: Capability; readonly limits: readonly LedgerCharge[] } {
  const blocks = inspectVerified(token, options);
  const clock = options.clock ?? systemClock;
  const identity = (b: VerifiedBlock) => ({ id: b.data.id, link: { ledger: options.store, key: b.revocationId } });
  const [first, ...rest] = blocks as [VerifiedBlock, ...VerifiedBlock[]];
  if (first.data.kind !== "root") throw new InvalidToken("authority block is not a root link");
  const { principal, tenants, roles, requestId, issuedAt, issuer }: MintRecord = first.data.mint;
  const root = createTokenRoot(first.data.grant, { principal, tenants, roles, requestId, issuedAt, issuer }, clock, identity(first));
  let cap: Capability = root;
  for (const b of rest) {
    const d = b.data;
    const content =
      d.kind === "narrow"
        ? { kind: "narrow" as const, grant: d.grant }
        : d.kind === "restrict"
          ? { kind: "restrict" as const, conditions: d.conditions }
          : { kind: "revocable" as const, labels: d.kind === "revocable" ? d.labels : {} };
    cap = appendTokenLink(cap, content, identity(b));
  }
  verifiedRoots.set(root, { token, keys: publicKeyMap(options.publicKeys), depth: blocks.length - 1, leafId: (blocks[blocks.length - 1] as VerifiedBlock).data.id });
  tokenCache.set(cap, { plain: token });
  return { cap, limits: limitsOf(blocks) };
}

/** The limits (uses and budgets) of a token's blocks, as the kernel charges them to the store: only limited blocks. */
function limitsOf(blocks: readonly VerifiedBlock[]): LedgerCharge[] {
  const entries: LedgerCharge[] = [];
  for (const b of blocks) {
    const d = b.data;
    const c = compileConditions(d.kind === "root" || d.kind === "narrow" ? d.grant : d.kind === "restrict" ? d.conditions : {});
    if (c.maxUses === null && c.budgetCalls === null && c.budgetCost === null) continue;
    const maxCalls = c.maxUses === null ? c.budgetCalls : c.budgetCalls === null ? c.maxUses : Math.min(c.maxUses, c.budgetCalls);
    entries.push({ key: b.revocationId, maxCalls, maxCost: c.budgetCost });
  }
  return entries;
}

/** Asks the store to get ready to charge these limited blocks (leases, with Postgres). */
function prepareLimits(limits: readonly LedgerCharge[], store: TokenStore): Promise<void> {
  return limits.length === 0 || store.prepare === undefined ? Promise.resolve() : store.prepare(limits);
}

/**
 * `verify`, then waits until the store is ready to charge the token's uses
 * and budgets. With a store shared between processes (Postgres) that means
 * holding leases on the blocks' allowances: a process can only spend what it
 * holds, so use this (not `verify`) before authorizing a limited token there,
 * or its first requests may be denied with BudgetExhausted until the lease
 * arrives. With SQLite it is the same as `verify`.
 */
export async function verifyShared(token: string, options: VerifyOptions): Promise<Capability> {
  const { cap, limits } = verified(token, options);
  await prepareLimits(limits, options.store);
  return cap;
}

/** A verifier with a cache: presenting the same token again returns the same capability without re-verifying (revocation is still checked on every use). */
export interface Verifier {
  /** Verifies (or takes from the cache); a limited token's leases are requested in the background. */
  verify(token: string): Capability;
  /** `verify`, then waits until the store is ready to charge the token (see `verifyShared`). */
  verifyShared(token: string): Promise<Capability>;
}

/** Creates a verifier that keeps up to `cacheSize` verified tokens (least recently used dropped first). */
export function createVerifier(options: VerifyOptions & { readonly cacheSize?: number }): Verifier {
  const size = options.cacheSize ?? 1024;
  const cache = new Map<string, { readonly cap: Capability; readonly limits: readonly LedgerCharge[] }>();
  const lookup = (token: string) => {
    const hit = cache.get(token);
    if (hit !== undefined) {
      cache.delete(token);
      cache.set(token, hit);
      return hit;
    }
    const entry = verified(token, options);
    cache.set(token, entry);
    if (cache.size > size) cache.delete(cache.keys().next().value as string);
    // Leases are requested at once, in the background; the store fails closed on its own if that fails.
    void prepareLimits(entry.limits, options.store).catch(() => undefined);
    return entry;
  };
  return Object.freeze({
    verify: (token: string): Capability => lookup(token).cap,
    async verifyShared(token: string): Promise<Capability> {
      const { cap, limits } = lookup(token);
      await prepareLimits(limits, options.store);
      return cap;
    },
  });
}

/** Revokes a token (its last block, so every token derived from it too). Needs the public keys to read the token. */
export async function revokeToken(token: string, options: { readonly publicKeys: PublicKeySet; readonly store: TokenStore; readonly reason?: string }): Promise<void> {
  const ids = openToken(token, publicKeyMap(options.publicKeys)).revocationIds;
  await options.store.revoke({ revocationId: ids[ids.length - 1] ?? "" }, options.reason);
}
