import { createHash, randomUUID } from "node:crypto";
import { z } from "zod";
import { createRoot, type Capability } from "./capability.js";
import type { MintRecord } from "./node.js";
import { systemClock, type Clock } from "./clock.js";
import { CapabilityDenied, InvalidInput, Revoked, StoreUnavailable } from "./errors.js";
import { STORE_UNAVAILABLE_BECAUSE } from "./evaluation.js";
import type { RevocationList } from "./ledger.js";
import { describeIssues, type Grant } from "./grant.js";
import type { FullReach } from "./reach.js";
import { snapshotPlainData } from "./plain-data.js";

/** An authenticated principal: who, for which tenants, in which roles. */
export interface Principal {
  readonly id: string;
  readonly tenants?: readonly string[];
  readonly roles?: readonly string[];
}

/**
 * The application's policy: maps a principal to the root grant it gets.
 * Returning null refuses to mint.
 */
export type MintPolicy = (principal: Required<Principal>) => Grant | null;

/** Turns an incoming request (headers, a session, anything) into a principal, or throws. */
export type Authenticator<In> = (incoming: In) => Principal | Promise<Principal>;

export interface MintOptions<In> {
  /** Who issues the capabilities, recorded in every mint record. */
  readonly issuer: string;
  readonly policy: MintPolicy;
  /** How `authenticate` recognizes a principal; without it, only `issue` with a known principal works. */
  readonly authenticator?: Authenticator<In>;
  /** The clock expiry is checked against, for this mint's capabilities and everything derived from them. */
  readonly clock?: Clock;
  /**
   * The application's revocation list (its token store, from
   * `agentcap/token`): the mint refuses a principal revoked there (until
   * reinstated), and every capability it issues, and everything derived
   * from one, is refused as soon as the list revokes its principal, tenant,
   * role, session or link.
   */
  readonly revocations?: RevocationList;
}

/** The application side: the only place root capabilities come from. */
export interface Mint<In> {
  readonly issuer: string;
  /**
   * This mint's identity, recorded as `mintId` in every root it issues: what
   * a resource or dispatcher told to trust only the application's mints
   * (`mints: [mint.id]`) checks, so a root minted by any other code is refused.
   */
  readonly id: string;
  /** Mints a root capability for an already-authenticated principal. Throws CapabilityDenied when the policy refuses. */
  issue(principal: Principal, options?: { readonly requestId?: string }): Capability<FullReach>;
  /** Authenticates `incoming` with the configured authenticator, then issues. */
  authenticate(incoming: In, options?: { readonly requestId?: string }): Promise<Capability<FullReach>>;
}

const principalSchema = z.strictObject({
  id: z.string().min(1).max(256),
  tenants: z.array(z.string().min(1).max(256)).max(1024).optional(),
  roles: z.array(z.string().min(1).max(256)).max(1024).optional(),
});

/** Creates the mint for one issuer and policy; its `id` is new and random. */
export function createMint<In = unknown>(options: MintOptions<In>): Mint<In> {
  return createKeyedMint(options, null);
}

/**
 * The mint identity of roots signed under Biscuit root key `keyId` whose
 * public key is `publicKey`: the same for the token mint holding the key and
 * for every process verifying its tokens.
 */
export function keyMintId(keyId: number, publicKey: string): string {
  return `key:${keyId}:${createHash("sha256").update(publicKey).digest("hex").slice(0, 16)}`;
}

/** Kernel and token layer: a mint whose roots are signed under a root key (null for none), which its revocation list may revoke. */
export function createKeyedMint<In>(options: MintOptions<In>, key: { readonly keyId: number; readonly publicKey: string } | null): Mint<In> {
  const keyId = key?.keyId ?? null;
  const id = key === null ? `mint:${randomUUID()}` : keyMintId(key.keyId, key.publicKey);
  // Own properties only: a polluted Object.prototype must not supply a clock, an authenticator or a policy.
  const own = <K extends keyof MintOptions<In>>(k: K): MintOptions<In>[K] | undefined => (Object.hasOwn(options, k) ? options[k] : undefined);
  const [issuer, policy, authenticator] = [own("issuer"), own("policy"), own("authenticator")];
  const clock = own("clock") ?? systemClock;
  const revocations = own("revocations");
  if (revocations !== undefined && (typeof revocations !== "object" || typeof revocations.mintRefusal !== "function")) {
    throw new InvalidInput("createMint's revocations must be a token store (openSqliteTokenStore or openPostgresTokenStore)");
  }
  const guard = revocations === undefined ? null : Object.freeze({ list: revocations, keyId });
  if (typeof issuer !== "string" || issuer.length === 0) throw new InvalidInput("createMint needs a non-empty issuer name");
  if (typeof policy !== "function") throw new InvalidInput("createMint needs a policy function that maps a principal to a grant");

  const issue = (principal: Principal, opts?: { readonly requestId?: string }): Capability<FullReach> => {
    const parsed = principalSchema.safeParse(snapshotPlainData(principal, "principal"));
    if (!parsed.success) throw new InvalidInput(describeIssues("principal", parsed.error));
    const p = Object.freeze({
      id: parsed.data.id,
      tenants: Object.freeze(parsed.data.tenants ?? []),
      roles: Object.freeze(parsed.data.roles ?? []),
    });
    const requestId = (opts !== undefined && Object.hasOwn(opts, "requestId") ? opts.requestId : undefined) ?? randomUUID();
    if (typeof requestId !== "string" || requestId.length === 0) throw new InvalidInput("requestId must be a non-empty string");
    if (guard !== null) {
      guard.list.refresh?.();
      const down = guard.list.unavailable?.() ?? null;
      if (down !== null) {
        throw new StoreUnavailable(`the mint cannot tell whether principal ${p.id} is revoked: ${down}; nothing was minted, retry shortly`, {
          capabilityId: "",
          link: 0,
          linkId: "",
          rule: "revocations",
          because: STORE_UNAVAILABLE_BECAUSE,
        });
      }
      const refusal = guard.list.mintRefusal(p, keyId);
      if (refusal !== null) {
        throw new Revoked(`the mint refuses principal ${p.id}: ${refusal}; nothing is minted for it until the application reinstates it`, {
          capabilityId: "",
          link: 0,
          linkId: "",
          rule: "revoked",
          because: "is revoked; the application must reinstate it before anything is minted for it",
        });
      }
    }
    const grant = policy(p);
    if (grant === null) {
      throw new CapabilityDenied(`the mint's policy grants nothing to principal ${p.id}`, {
        capabilityId: "",
        link: 0,
        linkId: "",
        rule: "policy",
        because: "the mint's policy grants nothing to this principal",
      });
    }
    const record: MintRecord = { principal: p.id, tenants: p.tenants, roles: p.roles, requestId, issuedAt: clock.now(), issuer, mintId: id };
    const root = createRoot(grant, record, clock, { guard });
    guard?.list.minted?.(root);
    return root;
  };

  return Object.freeze({
    issuer,
    id,
    issue,
    authenticate: async (incoming: In, opts?: { readonly requestId?: string }) => {
      if (authenticator === undefined) throw new InvalidInput("this mint has no authenticator; pass one to createMint or call issue()");
      return issue(await authenticator(incoming), opts);
    },
  });
}
