/**
 * Credentials exchanged per session: a session opened with an identity
 * provider's access token has that token (the subject token) remembered
 * here, by the root of the session's capability and nowhere else; when a
 * resource sends a request of that session to an upstream or origin
 * configured for token exchange, the subject token is exchanged (RFC 8693,
 * token-exchange.ts) for one of that target, and the result is sent as the
 * request's Authorization header. An exchanged token is kept for its
 * session's root and target until shortly before it expires, so a session's
 * calls do not each cost an exchange, and forgotten when the session ends.
 *
 * Nothing is exchanged or sent for a capability that is revoked or expired;
 * a revocation that reaches a session (its principal, its token's root, the
 * session itself) drops its subject token and every token exchanged for it
 * as soon as the token store learns of it, and a token exchanged while it
 * happened is neither sent nor kept. Subject and exchanged tokens live in
 * this closure only: not in capabilities, audit events, errors, or anything
 * the model or tool code is given.
 */
import { denialError, expiresAt, TokenExchangeFailed, type Capability, type Clock, type CredentialSource } from "../kernel/index.js";
import { ancestorAt, liveDenial, rootOf, type RevocationList } from "../kernel/internal.js";
import type { ExchangeTarget } from "./config.js";
import type { ExchangedToken, TokenExchanger } from "./token-exchange.js";

/** Sessions whose subject tokens are kept at once unless told more; the oldest is forgotten beyond it (its next exchange fails as one without a token). */
const MAX_SUBJECTS = 10_000;
/** Session links remembered per subject token, to see a revocation of the session itself. */
const MAX_SESSIONS_PER_SUBJECT = 16;
/** How long an exchanged token whose lifetime the provider did not give is used. */
const UNKNOWN_LIFETIME_MS = 60_000;

/** An exchanged token, and until when it is sent without exchanging again. */
interface Kept {
  readonly authorization: string;
  readonly reuseUntil: number;
}

/** One session root's subject token and what was exchanged for it. */
interface Subject {
  readonly token: string;
  readonly expiresAt: number;
  /** The capability the token authenticated to: revoked or expired, so is every session of it. */
  readonly anchor: Capability;
  /** The session links (caretakers labelled `session`) that used it, by link id. */
  readonly sessions: Map<string, Capability>;
  /** Exchanged tokens (or exchanges under way), by target. */
  readonly tokens: Map<string, Promise<Kept>>;
}

/** What the cache holds now: subject tokens and exchanged ones; no values. */
export interface ExchangeStats {
  readonly subjects: number;
  readonly exchanged: number;
}

/** Subject tokens by session root, and the credential sources that exchange them. */
export interface ExchangedCredentials {
  /** Remembers `subjectToken` for `cap` (a session's capability as authentication gave it) and every capability derived from it, until the capability expires. */
  remember(cap: Capability, subjectToken: string): void;
  /**
   * A credential source that sends, to `origin` only, a token exchanged for
   * `target`; `what` names the target in errors ("upstream api"). Its
   * authorization() rejects with Revoked or Expired for a dead capability,
   * and with TokenExchangeFailed when there is no subject token to exchange
   * or the provider does not exchange it.
   */
  source(what: string, origin: string, target: ExchangeTarget): CredentialSource;
  /** Forgets the subject token kept for `cap`'s root and every token exchanged for it: its session ended. */
  forget(cap: Capability): void;
  stats(): ExchangeStats;
  /** Forgets everything and stops watching for revocations. */
  close(): void;
}

/** How the cache exchanges, learns of revocations, and tells time. */
export interface ExchangedCredentialsOptions {
  readonly exchanger: TokenExchanger;
  /** The token store: a revocation it learns of drops what the sessions it reaches hold. */
  readonly revocations: RevocationList;
  readonly clock: Clock;
  /** An exchanged token is exchanged again this long before it expires (or at half its lifetime, when that is shorter). */
  readonly refreshBeforeMs: number;
  /** Subject tokens kept at once (at least 10,000): the gateway's session limit, so that no open session's token is forgotten for another's. */
  readonly maxSubjects?: number;
}

/** The cache of exchanged tokens for the gateway's sessions. */
export function exchangedCredentials(options: ExchangedCredentialsOptions): ExchangedCredentials {
  const { exchanger, revocations, clock, refreshBeforeMs } = options;
  const maxSubjects = Math.max(MAX_SUBJECTS, options.maxSubjects ?? 0);
  const subjects = new Map<string, Subject>();

  /** True when nothing of `subject` may act any more: expired, its root revoked, or every session that used it revoked. */
  const over = (subject: Subject, now: number): boolean => {
    if (subject.expiresAt <= now || liveDenial(subject.anchor) !== null) return true;
    if (subject.sessions.size === 0) return false;
    for (const [id, session] of subject.sessions) if (liveDenial(session) !== null) subject.sessions.delete(id);
    return subject.sessions.size === 0;
  };
  const sweep = () => {
    const now = clock.now();
    for (const [root, subject] of subjects) if (over(subject, now)) subjects.delete(root);
  };
  const unsubscribe = revocations.subscribe(sweep);

  /** The session link of `cap`'s chain (the innermost caretaker labelled `session`), or null. */
  const sessionOf = (cap: Capability): Capability | null => {
    const lineage = cap.lineage;
    for (let i = lineage.length - 1; i >= 0; i--) if (lineage[i]?.labels.session !== undefined) return ancestorAt(cap, i);
    return null;
  };

  /** Refuses a dead capability with its denial, forgetting its subject when that is over too. */
  const assertLive = (cap: Capability, root: string) => {
    revocations.refresh?.();
    const dead = liveDenial(cap);
    if (dead === null) return;
    const subject = subjects.get(root);
    if (subject !== undefined && over(subject, clock.now())) subjects.delete(root);
    throw denialError(dead);
  };

  const keep = (token: ExchangedToken, subject: Subject, now: number): Kept => {
    const lifetime = token.expiresAt === null ? UNKNOWN_LIFETIME_MS : Math.max(0, token.expiresAt - now);
    const until = now + lifetime - Math.min(refreshBeforeMs, lifetime / 2);
    return { authorization: token.authorization, reuseUntil: Math.min(until, subject.expiresAt) };
  };

  const source = (what: string, origin: string, target: ExchangeTarget): CredentialSource => {
    const key = JSON.stringify([what, target.audience ?? null, target.resource ?? null, target.scopes ?? []]);
    return Object.freeze({
      authorization: async (cap: Capability, to: string): Promise<string | null> => {
        // Exchanged for this target alone, so never sent anywhere else (a redirect to another origin, say).
        if (to !== origin) return null;
        const root = rootOf(cap).id;
        assertLive(cap, root);
        const subject = subjects.get(root);
        if (subject === undefined || subject.expiresAt <= clock.now()) {
          subjects.delete(root);
          throw new TokenExchangeFailed(
            `${what} takes a token the identity provider issues in exchange for the caller's access token, and this session has none to exchange (it was opened with another kind of token, or its token was forgotten); open a session with an access token of the identity provider`,
            "no-subject-token",
          );
        }
        // Least recently used last, so the table forgets the sessions no one calls with.
        subjects.delete(root);
        subjects.set(root, subject);
        const session = sessionOf(cap);
        if (session !== null && !subject.sessions.has(session.id)) {
          if (subject.sessions.size >= MAX_SESSIONS_PER_SUBJECT) subject.sessions.delete(subject.sessions.keys().next().value as string);
          subject.sessions.set(session.id, session);
        }
        let pending = subject.tokens.get(key);
        if (pending === undefined) pending = exchangeFor(subject, key, what, target);
        else {
          const kept = await pending.catch(() => undefined);
          if (kept === undefined || clock.now() >= kept.reuseUntil) {
            // Failed or due for renewal: exchange again, or share the exchange another call started meanwhile.
            const current = subject.tokens.get(key);
            pending = current !== undefined && current !== pending ? current : exchangeFor(subject, key, what, target);
          }
        }
        const result = await pending;
        // Revoked while the exchange was under way: nothing is sent, and nothing exchanged for it is kept.
        assertLive(cap, root);
        if (subjects.get(root) !== subject) {
          throw new TokenExchangeFailed(`${what}: the caller's session ended while its token was being exchanged`, "no-subject-token");
        }
        return result.authorization;
      },
    });
  };

  /** Starts one exchange for `subject` and `key`, shared by every call that asks before it ends; a failed one is not kept. */
  const exchangeFor = (subject: Subject, key: string, what: string, target: ExchangeTarget): Promise<Kept> => {
    const now = clock.now();
    const pending = exchanger.exchange(subject.token, target, what, now).then((token) => keep(token, subject, now));
    subject.tokens.set(key, pending);
    pending.catch(() => {
      if (subject.tokens.get(key) === pending) subject.tokens.delete(key);
    });
    return pending;
  };

  return Object.freeze({
    remember: (cap: Capability, subjectToken: string) => {
      const until = expiresAt(cap) ?? Number.POSITIVE_INFINITY;
      const root = rootOf(cap).id;
      subjects.delete(root);
      // The oldest entries are the first to expire: forget those that have, then any beyond the bound.
      const now = clock.now();
      for (const [id, s] of subjects) {
        if (s.expiresAt > now && subjects.size < maxSubjects) break;
        subjects.delete(id);
      }
      subjects.set(root, { token: subjectToken, expiresAt: until, anchor: cap, sessions: new Map(), tokens: new Map() });
    },
    source,
    forget: (cap: Capability) => {
      subjects.delete(rootOf(cap).id);
    },
    stats: () => {
      let exchanged = 0;
      for (const s of subjects.values()) exchanged += s.tokens.size;
      return Object.freeze({ subjects: subjects.size, exchanged });
    },
    close: () => {
      unsubscribe();
      subjects.clear();
    },
  });
}

/**
 * The credential source for each origin: the exchanging one configured for
 * it, or else `fallback` (the vault), or none.
 */
export function credentialsByOrigin(exchanging: ReadonlyMap<string, CredentialSource>, fallback: CredentialSource | null): CredentialSource | null {
  if (exchanging.size === 0) return fallback;
  return Object.freeze({
    authorization: (cap: Capability, origin: string, signal?: AbortSignal) => {
      const source = exchanging.get(origin) ?? fallback;
      return source === null ? Promise.resolve(null) : source.authorization(cap, origin, signal);
    },
  });
}
