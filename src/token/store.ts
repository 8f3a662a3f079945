import { InvalidInput, type Capability } from "../kernel/index.js";
import type { ExternalLedger, LedgerCharge, RevocationList } from "../kernel/internal.js";

/**
 * What to revoke. A token block (and every token that contains it) by its
 * revocation id; a link by its capability id (a root's id revokes its whole
 * subtree, in this process and in every token made from it); or who: every
 * capability and token minted for a principal, a tenant or a role; every
 * chain labelled with a session; everything signed under a root key id.
 */
export type RevocationTarget =
  | { readonly revocationId: string }
  | { readonly capabilityId: string }
  | { readonly principal: string }
  | { readonly tenant: string }
  | { readonly role: string }
  | { readonly session: string }
  | { readonly keyId: number };

/** The kinds of revocation a store keeps, one per target. */
export const TARGET_KINDS = Object.freeze(["block", "link", "principal", "tenant", "role", "session", "key"] as const);
export type TargetKind = (typeof TARGET_KINDS)[number];

/** Targets that name who rather than what: reinstating one lets the mint issue for it again. Nothing already refused comes back. */
export type ReinstateTarget = { readonly principal: string } | { readonly tenant: string } | { readonly role: string };

/** How a revocation is recorded. */
export interface RevokeOptions {
  /** Why, recorded with it and in the audit log (at most 1000 characters). */
  readonly reason?: string;
  /**
   * Who revokes: a capability whose grant allows revoking this target (the
   * `revoke` domain). Required when the store writes audit events; the
   * revocation is refused (CapabilityDenied) when it does not allow it.
   */
  readonly by?: Capability;
  /**
   * The time after which everything this revocation refuses has expired anyway
   * (ms since the epoch), when known: the entry is dropped from the list
   * `REVOCATION_KEPT_AFTER_EXPIRY_MS` after it.
   */
  readonly expiresAt?: number | null;
}

/**
 * How long a revocation is kept after everything it refuses has expired:
 * one day. Each process drops entries by its own wall clock; one whose clock
 * runs ahead by less than this cannot drop a revocation that a process with
 * a right clock still needs (the token is live there).
 */
export const REVOCATION_KEPT_AFTER_EXPIRY_MS = 24 * 60 * 60 * 1000;

/** Entries whose expiry is at or before this may be dropped now. */
export function droppableBefore(now: number): number {
  return now - REVOCATION_KEPT_AFTER_EXPIRY_MS;
}

/** What a revocation reached in this process, besides every other process sharing the store. */
export interface RevocationReach {
  /** Live capabilities minted here by a mint bound to the store, refused from now on. */
  readonly capabilities: number;
  /** Tokens verified here against the store (and still cached or held), refused from now on. */
  readonly tokens: number;
  /** Sessions (a gateway's, a runtime's) closed because of it. */
  readonly sessions: number;
}

/** The outcome of one revocation. */
export interface RevocationReport {
  readonly kind: TargetKind;
  readonly id: string;
  readonly reason: string;
  /** Milliseconds since the epoch, by the store's clock. */
  readonly at: number;
  readonly reached: RevocationReach;
}

/** One entry of the revocation list. */
export interface RevocationEntry {
  readonly kind: TargetKind;
  readonly id: string;
  readonly reason: string;
  readonly revokedAt: number;
  /** When a principal, tenant or role was reinstated (the mint may issue for it again), else null. */
  readonly reinstatedAt: number | null;
  /** When the entry may be dropped, or null to keep it. */
  readonly expiresAt: number | null;
}

/** How big a store is and what it has seen. */
export interface TokenStoreStats {
  /** Entries in the revocation list (dropped once everything they refuse has expired). */
  readonly revocations: number;
  /** Limited blocks and links with a use count in the store. */
  readonly usageKeys: number;
  /** Postgres: notifications received, and those ignored as malformed or not agentcap's. */
  readonly notifications: { readonly received: number; readonly ignored: number };
  /** Postgres: whether the notification connection is down and the store is polling the revocation list instead. */
  readonly polling: boolean;
}

/**
 * Where verified tokens keep the state that cannot be checked offline:
 * revocations, and the uses and budgets of each block (keyed by its
 * revocation id). It is also the application's revocation list: a mint and a
 * verifier bound to it refuse what it revokes, at the next decision in every
 * process sharing it. The kernel consults it synchronously at every check, so
 * implementations answer from memory and keep that memory current.
 */
export interface TokenStore extends ExternalLedger, RevocationList {
  /** The store's persistent identity: tokens minted under it carry it, and verify refuses them against any other store. */
  readonly id: string;
  /**
   * Why the store cannot tell what is revoked now (its database cannot be
   * read, or it was closed), or null while it can. Meanwhile every decision
   * and verification against it is refused with StoreUnavailable (fail
   * closed, retryable), never reported as a revocation.
   */
  unavailable(): string | null;
  /**
   * Gets ready to charge these limited keys: a store shared between processes
   * (Postgres) acquires leases on their allowance here, since `charge` is
   * synchronous and may only spend what this process already holds. Resolves
   * once done, also when no room was left (charges then fail, closed); never
   * rejects for lack of room. Stores that charge exactly in `charge` (SQLite)
   * leave it out. `verifyShared` awaits it.
   */
  prepare?(entries: readonly LedgerCharge[]): Promise<void>;
  /**
   * Records the revocation durably, then applies it here: every verifier
   * sharing the store sees it at its next decision, signals of work in
   * flight fire, watched sessions close. Rejects with InvalidInput for a bad
   * target or reason, and with CapabilityDenied when `by` may not revoke it.
   */
  revoke(target: RevocationTarget, options?: RevokeOptions): Promise<RevocationReport>;
  /** Lets the mint issue for a revoked principal, tenant or role again. What was minted before the revocation stays refused. */
  reinstate(target: ReinstateTarget): Promise<void>;
  /** The revocation list, newest first. */
  list(): Promise<readonly RevocationEntry[]>;
  /** Size and health. */
  stats(): TokenStoreStats;
  /** Told of every root minted by a mint bound to the store, held weakly, so a revocation can count what it reached. */
  minted(root: Capability): void;
  /** Told of every root verified against the store, held weakly likewise. */
  verified(root: Capability): void;
  /**
   * Calls `onRevoked` once, as soon as the store learns of a revocation that
   * refuses `capability` (here or in another process); returns the
   * unwatcher. For sessions, which close then; counted in reports as sessions.
   */
  watchSession(capability: Capability, onRevoked: (reason: string) => void): () => void;
  /** Releases connections and files. */
  close(): Promise<void>;
}

const HEX = /^[0-9a-f]{2,256}$/;
const ID = /^[A-Za-z0-9-]{1,64}$/;
const NAME_LENGTH = 256;

const ONE_OF = "revocation target must be one of { revocationId }, { capabilityId }, { principal }, { tenant }, { role }, { session }, { keyId }";

/** Validates a revocation target; returns its kind and id, or a message saying what is wrong. */
export function targetKey(target: RevocationTarget): { readonly kind: TargetKind; readonly id: string } | string {
  if (typeof target !== "object" || (target as unknown) === null) return ONE_OF;
  const keys = Object.keys(target);
  if (keys.length !== 1) return ONE_OF;
  const t = target as Record<string, unknown>;
  const name = (kind: TargetKind, value: unknown, what: string) =>
    typeof value === "string" && value.length > 0 && value.length <= NAME_LENGTH ? { kind, id: value } : `${what} must be a non-empty string of at most ${NAME_LENGTH} characters`;
  switch (keys[0]) {
    case "revocationId":
      return typeof t.revocationId === "string" && HEX.test(t.revocationId) ? { kind: "block", id: t.revocationId } : "revocationId must be the hex revocation id of a token block";
    case "capabilityId":
      return typeof t.capabilityId === "string" && ID.test(t.capabilityId) ? { kind: "link", id: t.capabilityId } : "capabilityId must be a capability id (letters, digits and dashes)";
    case "principal":
      return name("principal", t.principal, "principal");
    case "tenant":
      return name("tenant", t.tenant, "tenant");
    case "role":
      return name("role", t.role, "role");
    case "session":
      return name("session", t.session, "session");
    case "keyId":
      return typeof t.keyId === "number" && Number.isInteger(t.keyId) && t.keyId >= 0 && t.keyId <= 0xffffffff
        ? { kind: "key", id: String(t.keyId) }
        : "keyId must be a root key id (a whole number from 0 to 4294967295)";
    default:
      return ONE_OF;
  }
}

/** Validates a target, throwing InvalidInput. */
export function checkedTarget(target: RevocationTarget): { readonly kind: TargetKind; readonly id: string } {
  const t = targetKey(target);
  if (typeof t === "string") throw new InvalidInput(t);
  return t;
}

/** Validates a reinstatement target, throwing InvalidInput. */
export function reinstateKey(target: ReinstateTarget): { readonly kind: "principal" | "tenant" | "role"; readonly id: string } {
  const t = checkedTarget(target);
  if (t.kind !== "principal" && t.kind !== "tenant" && t.kind !== "role") {
    throw new InvalidInput("only a principal, tenant or role can be reinstated; a revoked token, link, session or key stays revoked");
  }
  return { kind: t.kind, id: t.id };
}

/** The longest revocation reason a store keeps, in characters. */
export const MAX_REASON_LENGTH = 1000;

/** A revocation reason as stored; throws InvalidInput for one that is not a string or too long. */
export function revocationReason(reason: unknown): string {
  if (typeof reason !== "string") throw new InvalidInput("a revocation reason must be a string");
  if (reason.length > MAX_REASON_LENGTH) {
    throw new InvalidInput(`a revocation reason must be at most ${MAX_REASON_LENGTH} characters; this one has ${reason.length}`);
  }
  return reason;
}

/** The expiry given with a revocation: a time, or null when unknown. */
export function revocationExpiry(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw new InvalidInput("expiresAt must be milliseconds since the epoch, or null");
  return value;
}
