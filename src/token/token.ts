/**
 * Capabilities as Biscuit tokens: a mint that can sign, `toToken` for a
 * capability, offline `attenuate` of a token string, and `verify` back into a
 * kernel capability whose chain mirrors the token's blocks.
 *
 * Signing keys live only in this module's WeakMap, keyed by root capability:
 * nothing reachable from a capability leads to a key.
 */
import { randomUUID } from "node:crypto";
import {
  ancestorAt,
  appendTokenLink,
  compileConditions,
  createKeyedMint,
  keyMintId,
  createTokenRoot,
  deadDenial,
  defined,
  moveToLedger,
  rootOf,
  STORE_UNAVAILABLE_BECAUSE,
  watchLinkRevocation,
  type LedgerCharge,
} from "../kernel/internal.js";
import {
  denialError,
  Expired,
  expiresAt,
  InvalidInput,
  InvalidToken,
  parseGrant,
  Revoked,
  StoreUnavailable,
  systemClock,
  type Capability,
  type Clock,
  type Grant,
  type LinkConditions,
  type LinkSummary,
  type Mint,
  type MintOptions,
} from "../kernel/index.js";
import { appendBlocks, extendToken, issueAuthority, MAX_TOKEN_BLOCKS, openToken, publicKeyOf, sealToken, type DatalogCode, type PublicKeys } from "./biscuit.js";
import { blockJsonOf, compileBlock, decodeBlock, encodeBlock, printedBlock, RESERVED_LABELS, type BlockData } from "./block.js";
import { checkKeyId, publicKeyMap, type PublicKeySet } from "./keys.js";
import type { RevocationReport, TokenStore } from "./store.js";

interface SigningRoot {
  readonly signingKey: string;
  readonly keyId: number;
  readonly publicKey: string;
  readonly store: TokenStore;
}

/** A token that ends at one link, with what its later links need: the keys to extend it, the store it is bound to, its blocks' revocation ids. */
interface Prefix {
  readonly token: string;
  readonly keys: PublicKeys;
  readonly store: TokenStore;
  readonly revocationIds: readonly string[];
}

const signingRoots = new WeakMap<Capability, SigningRoot>();
/**
 * The token up to each link that has been serialized or verified, keyed by
 * the link's summary (one object per link for its lifetime). Extending the
 * cached token rather than signing afresh keeps each block's revocation id,
 * so a link's uses stay one account in the store whatever token carries it.
 */
const prefixes = new WeakMap<LinkSummary, Prefix>();
const sealedTokens = new WeakMap<LinkSummary, string>();
/** Revocable links already mirrored into the store. */
const mirrored = new WeakSet<LinkSummary>();

/** Options of a mint whose root capabilities can become tokens. */
export interface TokenMintOptions<In> extends Omit<MintOptions<In>, "revocations"> {
  /** Ed25519 private key, `ed25519-private/<hex>`, from `generateKeyPair` or `agentcap token keygen`. */
  readonly signingKey: string;
  /** Root key id written into every token, so verifiers can pick the public key during rotation. */
  readonly keyId: number;
  /**
   * The application's token store. The mint refuses principals (and keys)
   * revoked there; its tokens carry the store's id and verify only against
   * it; revoking or spending a link in this process holds for every token
   * made from it, because `toToken` carries the link into this store.
   */
  readonly store: TokenStore;
}

/** A mint whose roots can be serialized with `toToken`, signed with its key. */
export interface TokenMint<In> extends Mint<In> {
  /** Public key verifiers need, `ed25519/<hex>`. */
  readonly publicKey: string;
  readonly keyId: number;
}

function checkStore(store: unknown, where: string): TokenStore {
  if (typeof store !== "object" || store === null || typeof (store as Partial<TokenStore>).id !== "string" || typeof (store as Partial<TokenStore>).mintRefusal !== "function") {
    throw new InvalidInput(`${where} needs the application's token store (openSqliteTokenStore or openPostgresTokenStore) as store`);
  }
  return store as TokenStore;
}

/** Creates a mint that remembers, for each root it issues, the key to sign its tokens with. The key never becomes reachable from a capability. */
export function createTokenMint<In = unknown>(options: TokenMintOptions<In>): TokenMint<In> {
  const { signingKey } = options;
  const keyId = checkKeyId(options.keyId);
  const publicKey = publicKeyOf(signingKey);
  const store = checkStore(Object.hasOwn(options, "store") ? options.store : undefined, "createTokenMint");
  // The kernel mint never sees the key; only the roots it issues are remembered here.
  const mint = createKeyedMint<In>({ ...options, signingKey: undefined, keyId: undefined, store: undefined, revocations: store } as MintOptions<In>, { keyId, publicKey });
  const signing: SigningRoot = Object.freeze({ signingKey, keyId, publicKey, store });
  const remember = <C extends Capability>(cap: C): C => {
    signingRoots.set(cap, signing);
    return cap;
  };
  const tokenMint: TokenMint<In> = {
    issuer: mint.issuer,
    id: mint.id,
    publicKey,
    keyId,
    issue: (principal, opts) => remember(mint.issue(principal, opts)),
    authenticate: async (incoming, opts) => remember(await mint.authenticate(incoming, opts)),
  };
  return Object.freeze(tokenMint);
}

function compiled(data: BlockData): DatalogCode {
  const json = encodeBlock(data);
  const code = compileBlock(json, decodeBlock(json, data.kind === "root" ? 0 : 1)).code;
  for (const value of Object.values(code.params)) {
    if (typeof value === "string" && value.includes('"')) {
      throw new InvalidInput(`cannot put ${JSON.stringify(value)} in a token: strings in token checks cannot hold a double quote (") since Biscuit prints them unescaped`);
    }
  }
  return code;
}

function linkBlock(link: LinkSummary): BlockData {
  if (link.shadow !== undefined) {
    throw new InvalidInput("a link attached in shadow is observed in this process and cannot become a token; make the token from the link above it, and attach the shadow where the token is verified");
  }
  if (link.approval !== undefined) {
    throw new InvalidInput("an approved capability is bound to one call in this process and cannot become a token; make the token before the approval, and ask for approval where the call runs");
  }
  if (link.grant !== null) return { v: 1, kind: "narrow", id: link.id, grant: link.grant };
  if (link.revocable) {
    // Reserved labels attribute events inside this process; the process that verifies the token labels its own caretakers.
    const labels = Object.fromEntries(Object.entries(link.labels).filter(([k]) => !RESERVED_LABELS.includes(k)));
    return { v: 1, kind: "revocable", id: link.id, labels };
  }
  return { v: 1, kind: "restrict", id: link.id, conditions: link.conditions };
}

/**
 * The use count and budget of a link as one ledger entry, and each of its
 * windowed rates as one more (keyed under the link's key, as the kernel
 * charges them); empty when it has none of these.
 */
function limitsOfConditions(conditions: LinkConditions, key: string): LedgerCharge[] {
  const c = compileConditions(conditions);
  const out: LedgerCharge[] = [];
  if (c.maxUses !== null || c.budgetCalls !== null || c.budgetCost !== null) {
    const maxCalls = c.maxUses === null ? c.budgetCalls : c.budgetCalls === null ? c.maxUses : Math.min(c.maxUses, c.budgetCalls);
    out.push({ key, maxCalls, maxCost: c.budgetCost });
  }
  (c.rates ?? []).forEach((rate, i) => out.push({ key: `${key}/rates.${i}`, maxCalls: rate.calls, maxCost: rate.cost, perMs: rate.perMs }));
  return out;
}

/**
 * Carries in-process state of link `index` into the store of the token now
 * holding it: a revocable link's revocation is mirrored there (revoking it
 * here revokes it in every token made from it), and a limited link's uses
 * move there (spending it here or through any token is one account).
 */
function carry(cap: Capability, index: number, link: LinkSummary, prefix: Prefix): void {
  const key = prefix.revocationIds[index] ?? "";
  if (limitsOfConditions(link.grant ?? link.conditions, key).length > 0) {
    const refused = moveToLedger(cap, index, { ledger: prefix.store, key });
    // No lease is taken here: making a token is no sign that this process will spend it (a shared store leases on the first charge).
    if (refused !== null) throw new InvalidInput(`cannot make a token of this capability: ${refused}`);
  }
  if (link.revocable && !mirrored.has(link)) {
    mirrored.add(link);
    const self = ancestorAt(cap, index);
    const until = expiresAt(self);
    watchLinkRevocation(cap, index, (reason) => {
      // The in-process link is refused at once; the store makes the token's copies of it refused too, here and elsewhere.
      void prefix.store.revoke({ capabilityId: link.id }, { reason, by: self, expiresAt: until }).catch(() => undefined);
    });
  }
}

/**
 * Serializes `cap` as a Biscuit token: the authority block holds the root
 * grant, mint record and store id, each further link one attenuation block.
 * Works for capabilities from a token mint and for verified tokens (and what
 * was derived from them in this process). Refuses (the typed denial) a chain
 * that is revoked, expired or spent. Revocable and limited links made in
 * this process are carried into the token store as they are serialized, so
 * nothing done to them here can be undone through a token: a limited link
 * already used in this process cannot be (InvalidInput), nor can a chain of
 * more links than a token holds blocks (InvalidInput).
 */
export function toToken(cap: Capability, options?: { readonly seal?: boolean }): string {
  const dead = deadDenial(cap);
  if (dead !== null) throw denialError(dead);
  const lineage = cap.lineage;
  // One block per link: a longer chain would make a token every verifier refuses.
  if (lineage.length > MAX_TOKEN_BLOCKS) {
    throw new InvalidInput(`this capability's chain has ${lineage.length} links; a token holds at most ${MAX_TOKEN_BLOCKS}, one block per link`);
  }
  const leaf = lineage[lineage.length - 1] as LinkSummary;
  const seal = options?.seal === true;
  if (seal) {
    const hit = sealedTokens.get(leaf);
    if (hit !== undefined) return hit;
  }
  let at = lineage.length - 1;
  while (at >= 0 && !prefixes.has(lineage[at] as LinkSummary)) at--;
  let prefix: Prefix;
  if (at < 0) {
    const signing = signingRoots.get(rootOf(cap));
    if (signing === undefined) {
      throw new InvalidInput("this capability's root was not minted with a signing key; mint it with createTokenMint, or verify it from a token");
    }
    const first = lineage[0] as LinkSummary;
    // The mint's identity is the key's, which every verifier derives from the key itself: the block does not claim it.
    const { principal, tenants, roles, requestId, issuedAt, issuer } = cap.mint;
    const mint = { principal, tenants, roles, requestId, issuedAt, issuer };
    const authority = compiled({ v: 1, kind: "root", id: first.id, keyId: signing.keyId, store: signing.store.id, mint, grant: first.grant as Grant });
    const issued = issueAuthority(signing.signingKey, signing.keyId, authority);
    prefix = { ...issued, keys: new Map([[signing.keyId, signing.publicKey]]), store: signing.store };
    carry(cap, 0, first, prefix);
    prefixes.set(first, prefix);
    at = 0;
  } else {
    prefix = prefixes.get(lineage[at] as LinkSummary) as Prefix;
  }
  for (let i = at + 1; i < lineage.length; i++) {
    const link = lineage[i] as LinkSummary;
    prefix = { ...prefix, ...extendToken(prefix.token, prefix.keys, compiled(linkBlock(link))) };
    carry(cap, i, link, prefix);
    prefixes.set(link, prefix);
  }
  if (!seal) return prefix.token;
  const sealed = sealToken(prefix.token, prefix.keys);
  sealedTokens.set(leaf, sealed);
  return sealed;
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

/**
 * What `verify` needs: the issuers' public keys by key id, the application's
 * token store (a token verifies only against the store it was minted under),
 * and the clock expiry is checked against.
 */
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
  // Without a quote in any string, Biscuit's printing of a block names exactly one structure, so comparing printings compares structures.
  if (opened.quotedString) throw new InvalidToken("token holds a string with a double quote (\"), which agentcap tokens never do: Biscuit prints such strings ambiguously");
  const ids = new Set<string>();
  return opened.blocks.map((source, index): VerifiedBlock => {
    const json = blockJsonOf(source, index);
    const data = decodeBlock(json, index);
    if (printedBlock(json, data) !== source) {
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

/**
 * `readToken`, then refuses a token minted under another store
 * (InvalidToken), and one with a revoked or expired block, or whose
 * principal, tenant, role or signing key is revoked. Throws InvalidToken,
 * Revoked or Expired.
 */
export function inspectVerified(token: string, options: VerifyOptions): readonly VerifiedBlock[] {
  const store = checkStore(options.store, "verify");
  const blocks = readToken(token, options.publicKeys);
  const leaf = blocks[blocks.length - 1] as VerifiedBlock;
  const root = (blocks[0] as VerifiedBlock).data;
  if (root.kind !== "root") throw new InvalidToken("authority block is not a root link");
  if (root.store !== store.id) {
    throw new InvalidToken(`token was minted under token store ${root.store}, not this verifier's store ${store.id}: verify it against the application's own store`);
  }
  const details = (b: VerifiedBlock, rule: string, because: string) => ({ capabilityId: leaf.data.id, link: b.index, linkId: b.data.id, rule, because });
  store.refresh?.();
  const down = store.unavailable();
  if (down !== null) {
    throw new StoreUnavailable(`token could not be checked for revocation: ${down}; retry shortly`, details(blocks[0] as VerifiedBlock, "revocations", STORE_UNAVAILABLE_BECAUSE));
  }
  const whole = store.mintRevokedReason(root.mint, root.keyId);
  if (whole !== null) throw new Revoked(`token was revoked: ${whole}`, details(blocks[0] as VerifiedBlock, "revoked", "was revoked"));
  for (const b of blocks) {
    const reason = store.revokedReason(b.revocationId, b.data.id) ?? store.linkRevokedReason(b.data.id, b.data.kind === "revocable" ? b.data.labels : {});
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
  const { principal, tenants, roles, requestId, issuedAt, issuer } = first.data.mint;
  const keyId = first.data.keyId;
  // readToken checked the signatures with this very key, so the root is the key's mint's, whatever its block says of itself.
  const mintId = keyMintId(keyId, publicKeyMap(options.publicKeys).get(keyId) ?? "");
  const guard = { list: options.store, keyId };
  const root = createTokenRoot(first.data.grant, { principal, tenants, roles, requestId, issuedAt, issuer, mintId }, clock, identity(first), guard);
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
  const revocationIds = blocks.map((b) => b.revocationId);
  prefixes.set(cap.lineage[blocks.length - 1] as LinkSummary, { token, keys: publicKeyMap(options.publicKeys), store: options.store, revocationIds });
  options.store.verified(root);
  return { cap, limits: limitsOf(blocks) };
}

/** The limits (uses, budgets and windowed rates) of a token's blocks, as the kernel charges them to the store: only limited and rated blocks. */
function limitsOf(blocks: readonly VerifiedBlock[]): LedgerCharge[] {
  return blocks.flatMap((b) => {
    const d = b.data;
    return limitsOfConditions(d.kind === "root" || d.kind === "narrow" ? d.grant : d.kind === "restrict" ? d.conditions : {}, b.revocationId);
  });
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

/**
 * Revokes a token (its last block, so every token derived from it too).
 * Needs the public keys to read the token; the entry is dropped from the
 * list once the token has expired anyway. `by` as in `TokenStore.revoke`.
 */
export async function revokeToken(
  token: string,
  options: { readonly publicKeys: PublicKeySet; readonly store: TokenStore; readonly reason?: string; readonly by?: Capability },
): Promise<RevocationReport> {
  const blocks = readToken(token, options.publicKeys);
  const leaf = blocks[blocks.length - 1] as VerifiedBlock;
  let until: number | null = null;
  for (const b of blocks) {
    const d = b.data;
    const e = d.kind === "root" || d.kind === "narrow" ? d.grant.expiresAt : d.kind === "restrict" ? d.conditions.expiresAt : undefined;
    if (e !== undefined && (until === null || e < until)) until = e;
  }
  // Its own holder gives up the token's last link (the same refusal as its block's): that needs no revoke grant.
  const target = options.by !== undefined && options.by.id === leaf.data.id ? { capabilityId: leaf.data.id } : { revocationId: leaf.revocationId };
  return options.store.revoke(target, { ...defined({ reason: options.reason, by: options.by }), expiresAt: until });
}
