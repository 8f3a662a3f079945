/**
 * A token store's revocation list as this process holds it, answering the
 * kernel's questions from memory, and what in this process a revocation
 * reaches: roots minted or verified here (held weakly, to count them),
 * sessions watching for their revocation, and signals of work in flight.
 * Both stores keep one; they load it from their tables and add to it only
 * what has been committed.
 */
import type { Capability, MintRecord } from "../kernel/index.js";
import { deadDenial, STORE_UNAVAILABLE_BECAUSE, type MintSubject } from "../kernel/internal.js";
import type { RevocationEntry, RevocationReach, TargetKind, TokenStore } from "./store.js";

interface Tracked {
  readonly ref: WeakRef<Capability>;
  readonly kind: "capability" | "token";
}

interface Watched {
  readonly capability: Capability;
  readonly onRevoked: (reason: string) => void;
}

const keyOf = (kind: TargetKind, id: string) => `${kind}:${id}`;

/** The details of a StoreUnavailable that concerns no capability (the list itself could not be read). */
export const NO_LINK = Object.freeze({ capabilityId: "", link: 0, linkId: "", rule: "revocations", because: STORE_UNAVAILABLE_BECAUSE });

const revokedNow = (cap: Capability): string | null => {
  const dead = deadDenial(cap);
  return dead !== null && dead.code === "ERR_REVOKED" ? dead.reason : null;
};

export class RevocationBook {
  #entries = new Map<string, RevocationEntry>();
  #failure: string | null = null;
  readonly #listeners = new Set<() => void>();
  readonly #tracked: Tracked[] = [];
  #sweepAt = 1024;
  readonly #sessions = new Set<Watched>();

  /** Entries held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Whether anything but revocations themselves needs telling (signals, sessions). */
  get watched(): boolean {
    return this.#listeners.size > 0 || this.#sessions.size > 0;
  }

  /**
   * The store can no longer tell what is revoked: `unavailable` says why, so
   * decisions are refused as StoreUnavailable; the questions below answer
   * `why` too, so that nothing asked without looking at `unavailable` first
   * is ever allowed meanwhile.
   */
  failClosed(why: string): void {
    if (this.#failure !== null) return;
    this.#failure = why;
    this.#notify();
  }

  /** The store can tell again: questions are answered from the list once more. */
  recover(): void {
    this.#failure = null;
  }

  get failure(): string | null {
    return this.#failure;
  }

  /** Replaces the whole list with what the store holds; tells watchers when something was added. */
  replace(entries: Iterable<RevocationEntry>): void {
    const next = new Map<string, RevocationEntry>();
    let added = false;
    for (const e of entries) {
      const key = keyOf(e.kind, e.id);
      next.set(key, e);
      const before = this.#entries.get(key);
      if (before === undefined || before.revokedAt !== e.revokedAt) added = true;
    }
    this.#entries = next;
    if (added) this.#notify();
  }

  /** Adds or replaces one committed entry; tells watchers. */
  add(entry: RevocationEntry): void {
    this.#entries.set(keyOf(entry.kind, entry.id), entry);
    this.#notify();
  }

  /** Marks a committed reinstatement. */
  reinstate(kind: TargetKind, id: string, at: number): void {
    const e = this.#entries.get(keyOf(kind, id));
    if (e !== undefined) this.#entries.set(keyOf(kind, id), { ...e, reinstatedAt: at });
  }

  /** Drops entries whose every refusal has expired anyway; returns how many. */
  prune(now: number): number {
    let dropped = 0;
    for (const [key, e] of this.#entries) {
      if (e.expiresAt !== null && e.expiresAt <= now) {
        this.#entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  entries(): RevocationEntry[] {
    return [...this.#entries.values()].sort((a, b) => b.revokedAt - a.revokedAt);
  }

  #reason(kind: TargetKind, id: string): RevocationEntry | undefined {
    return this.#entries.get(keyOf(kind, id));
  }

  /** ExternalLedger: a token block by revocation id, or a link by id. */
  revokedReason(key: string, linkId: string): string | null {
    if (this.#failure !== null) return this.#failure;
    if (this.#entries.size === 0) return null;
    return this.#reason("block", key)?.reason ?? this.#reason("link", linkId)?.reason ?? null;
  }

  /** RevocationList: a root's principal, tenants or roles revoked after it was minted, or its signing key. */
  mintRevokedReason(mint: Omit<MintRecord, "mintId">, keyId: number | null): string | null {
    if (this.#failure !== null) return this.#failure;
    if (this.#entries.size === 0) return null;
    if (keyId !== null) {
      const k = this.#reason("key", String(keyId));
      if (k !== undefined) return `root key id ${keyId}: ${k.reason}`;
    }
    const p = this.#reason("principal", mint.principal);
    if (p !== undefined && mint.issuedAt <= p.revokedAt) return `principal ${mint.principal}: ${p.reason}`;
    for (const t of mint.tenants) {
      const e = this.#reason("tenant", t);
      if (e !== undefined && mint.issuedAt <= e.revokedAt) return `tenant ${t}: ${e.reason}`;
    }
    for (const r of mint.roles) {
      const e = this.#reason("role", r);
      if (e !== undefined && mint.issuedAt <= e.revokedAt) return `role ${r}: ${e.reason}`;
    }
    return null;
  }

  /** RevocationList: a link by id, or the session its labels name. */
  linkRevokedReason(linkId: string, labels: Readonly<Record<string, string>>): string | null {
    if (this.#failure !== null) return this.#failure;
    if (this.#entries.size === 0) return null;
    const l = this.#reason("link", linkId);
    if (l !== undefined) return l.reason;
    const session = Object.hasOwn(labels, "session") ? labels.session : undefined;
    if (session !== undefined) {
      const s = this.#reason("session", session);
      if (s !== undefined) return `session ${session}: ${s.reason}`;
    }
    return null;
  }

  /** RevocationList: why nothing may be minted for `p` (under `keyId`) now. */
  mintRefusal(p: MintSubject, keyId: number | null): string | null {
    if (this.#failure !== null) return this.#failure;
    if (this.#entries.size === 0) return null;
    const open = (e: RevocationEntry | undefined) => e !== undefined && e.reinstatedAt === null;
    if (keyId !== null && this.#reason("key", String(keyId)) !== undefined) return `root key id ${keyId} is revoked: ${this.#reason("key", String(keyId))?.reason ?? ""}`;
    const principal = this.#reason("principal", p.id);
    if (open(principal)) return `principal ${p.id} is revoked: ${principal?.reason ?? ""}`;
    for (const t of p.tenants) if (open(this.#reason("tenant", t))) return `tenant ${t} is revoked: ${this.#reason("tenant", t)?.reason ?? ""}`;
    for (const r of p.roles) if (open(this.#reason("role", r))) return `role ${r} is revoked: ${this.#reason("role", r)?.reason ?? ""}`;
    return null;
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A root minted (`capability`) or verified (`token`) here, held weakly so a revocation can count it. */
  track(root: Capability, kind: Tracked["kind"]): void {
    this.#tracked.push({ ref: new WeakRef(root), kind });
    if (this.#tracked.length >= this.#sweepAt) {
      const live = this.#tracked.filter((t) => t.ref.deref() !== undefined);
      this.#tracked.splice(0, this.#tracked.length, ...live);
      this.#sweepAt = Math.max(1024, live.length * 2);
    }
  }

  watchSession(capability: Capability, onRevoked: (reason: string) => void): () => void {
    const w: Watched = { capability, onRevoked };
    const reason = revokedNow(capability);
    if (reason !== null) {
      onRevoked(reason);
      return () => undefined;
    }
    this.#sessions.add(w);
    return () => this.#sessions.delete(w);
  }

  /**
   * Runs `apply` (which adds a committed revocation to the book) and says
   * what it reached here: tracked roots live before and revoked after, and
   * sessions closed by it.
   */
  reach(apply: () => void): RevocationReach {
    const before: Tracked[] = [];
    for (const t of this.#tracked) {
      const cap = t.ref.deref();
      if (cap !== undefined && revokedNow(cap) === null) before.push(t);
    }
    const sessionsBefore = this.#sessions.size;
    apply();
    let capabilities = 0;
    let tokens = 0;
    for (const t of before) {
      const cap = t.ref.deref();
      if (cap === undefined || revokedNow(cap) === null) continue;
      if (t.kind === "capability") capabilities++;
      else tokens++;
    }
    return { capabilities, tokens, sessions: sessionsBefore - this.#sessions.size };
  }

  /** Tells signals and sessions that something may have been revoked. */
  #notify(): void {
    for (const w of [...this.#sessions]) {
      const reason = revokedNow(w.capability);
      if (reason === null) continue;
      this.#sessions.delete(w);
      w.onRevoked(reason);
    }
    for (const l of [...this.#listeners]) l();
  }
}

/** The questions a token store answers from its revocation book, and what it tells the book: the same for every store. */
export type BookAnswers = Pick<TokenStore, "unavailable" | "revokedReason" | "mintRevokedReason" | "linkRevokedReason" | "mintRefusal" | "subscribe" | "minted" | "verified" | "watchSession">;

/** A token store's answers from `book`. */
export function bookAnswers(book: RevocationBook): BookAnswers {
  return {
    unavailable: () => book.failure,
    revokedReason: (key, linkId) => book.revokedReason(key, linkId),
    mintRevokedReason: (mint, keyId) => book.mintRevokedReason(mint, keyId),
    linkRevokedReason: (linkId, labels) => book.linkRevokedReason(linkId, labels),
    mintRefusal: (p, keyId) => book.mintRefusal(p, keyId),
    subscribe: (listener) => book.subscribe(listener),
    minted: (root) => {
      book.track(root, "capability");
    },
    verified: (root) => {
      book.track(root, "token");
    },
    watchSession: (capability, onRevoked) => book.watchSession(capability, onRevoked),
  };
}
