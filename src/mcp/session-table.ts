/**
 * The HTTP gateway's open sessions, bounded. Every session held costs memory
 * (an SDK server and transport, about 90 KB), and MCP clients often never
 * say goodbye (the SDK's `client.close()` sends no DELETE), so the table
 * closes what nobody uses and refuses to grow past its limits:
 *
 * - a session with no request for `idleTimeoutMs` is closed (the owner says
 *   which requests count: `begin` marks one);
 * - a session whose capability expires is closed at that moment;
 * - one token, and one principal, hold at most `maxPerToken` and
 *   `maxPerPrincipal` sessions: a new one closes the least recently used idle
 *   session of the same token (or principal), so a client that reconnects
 *   without DELETE only replaces its own sessions and never locks itself out;
 *   when every one of them is busy, the new one is refused;
 * - the whole table holds at most `max`; past it a new session is refused
 *   rather than closing someone else's.
 *
 * A session is in the table from the moment it is opened (before its
 * initialize is answered), so sessions opened at once cannot overshoot the
 * limits. Closing is the owner's job (`close` given at creation); the table
 * forgets a session as soon as it asks for it to be closed, so counts never
 * include one that is going away.
 */
import { systemClock } from "../kernel/index.js";
import type { SessionLimits } from "./config.js";

/** Why a new session was refused. */
export interface SessionRefusal {
  /** Which limit: the table's own (`max`), or the principal's or token's when all of their sessions are busy. */
  readonly kind: "total" | "principal" | "token";
  readonly message: string;
}

interface Entry<S> {
  readonly id: string;
  readonly principal: string;
  readonly token: string;
  readonly value: S;
  /** Requests of the session being handled now; a session with any is never idle. */
  active: number;
  /** When the session was last used (a counter: later uses are larger). */
  used: number;
  idle: NodeJS.Timeout | null;
  expiry: NodeJS.Timeout | null;
}

/** A session's place in the table, while it is open. */
export interface SessionEntry<S> {
  readonly id: string;
  readonly principal: string;
  readonly value: S;
}

/** The open sessions of one HTTP gateway. */
export interface SessionTable<S> {
  /** How many sessions are open. */
  readonly size: number;
  /** The session with this id, or undefined (never opened, or closed since). */
  get(id: string): SessionEntry<S> | undefined;
  /**
   * Opens session `id` of `principal` under `token`, closed at `expiresAtMs`
   * (the system clock's time, as capabilities' expiry is) if given. When the
   * token or principal is at its limit, its least recently used idle session
   * is closed first. A refusal when there is no room (nothing is opened),
   * null once the session is in the table.
   */
  open(id: string, principal: string, token: string, value: S, expiresAtMs: number | null): SessionRefusal | null;
  /** Marks a request of session `id` as started; returns the function that marks it done. */
  begin(id: string): () => void;
  /** Forgets session `id` and asks its owner to close it, once. */
  remove(id: string, why: string): void;
  /** Every open session's id. */
  ids(): string[];
}

/** setTimeout's limit: a later expiry is left to the check on the session's next request. */
const MAX_DELAY_MS = 2_147_483_647;

/** A table bounded by `limits`; `close(value, why)` is called once for each session it drops or is asked to remove. */
export function sessionTable<S>(limits: SessionLimits, close: (id: string, value: S, why: string) => void): SessionTable<S> {
  const entries = new Map<string, Entry<S>>();
  const byPrincipal = new Map<string, Set<Entry<S>>>();
  const byToken = new Map<string, Set<Entry<S>>>();
  let clock = 0;

  const group = (map: Map<string, Set<Entry<S>>>, key: string): Set<Entry<S>> => {
    let set = map.get(key);
    if (set === undefined) {
      set = new Set();
      map.set(key, set);
    }
    return set;
  };
  const leave = (map: Map<string, Set<Entry<S>>>, key: string, e: Entry<S>) => {
    const set = map.get(key);
    set?.delete(e);
    if (set?.size === 0) map.delete(key);
  };

  const remove = (id: string, why: string) => {
    const e = entries.get(id);
    if (e === undefined) return;
    entries.delete(id);
    leave(byPrincipal, e.principal, e);
    leave(byToken, e.token, e);
    if (e.idle !== null) clearTimeout(e.idle);
    if (e.expiry !== null) clearTimeout(e.expiry);
    e.idle = e.expiry = null;
    close(id, e.value, why);
  };

  const armIdle = (e: Entry<S>) => {
    e.idle = setTimeout(() => {
      remove(e.id, `idle for ${limits.idleTimeoutMs} ms`);
    }, limits.idleTimeoutMs);
    e.idle.unref();
  };

  /** Closes the least recently used idle session of `set`; false when every one is busy. */
  const evictIdle = (set: ReadonlySet<Entry<S>>, why: string): boolean => {
    let oldest: Entry<S> | null = null;
    for (const e of set) if (e.active === 0 && (oldest === null || e.used < oldest.used)) oldest = e;
    if (oldest === null) return false;
    remove(oldest.id, why);
    return true;
  };

  return {
    get size() {
      return entries.size;
    },
    get: (id) => entries.get(id),
    open: (id, principal, token, value, expiresAtMs) => {
      const ofToken = byToken.get(token);
      if (ofToken !== undefined && ofToken.size >= limits.maxPerToken && !evictIdle(ofToken, `replaced by a new session of the same token (maxPerToken ${limits.maxPerToken})`)) {
        return { kind: "token", message: `this token already has ${limits.maxPerToken} sessions with requests in progress; end one (DELETE) or wait for one to finish` };
      }
      const ofPrincipal = byPrincipal.get(principal);
      if (
        ofPrincipal !== undefined &&
        ofPrincipal.size >= limits.maxPerPrincipal &&
        !evictIdle(ofPrincipal, `replaced by a new session of the same principal (maxPerPrincipal ${limits.maxPerPrincipal})`)
      ) {
        return { kind: "principal", message: `this principal already has ${limits.maxPerPrincipal} sessions with requests in progress; end one (DELETE) or wait for one to finish` };
      }
      if (entries.size >= limits.max) return { kind: "total", message: "the gateway has as many sessions as it may hold; try again later" };
      const e: Entry<S> = { id, principal, token, value, active: 0, used: ++clock, idle: null, expiry: null };
      entries.set(id, e);
      group(byPrincipal, principal).add(e);
      group(byToken, token).add(e);
      armIdle(e);
      if (expiresAtMs !== null) {
        const delay = Math.max(0, expiresAtMs - systemClock.now());
        if (delay <= MAX_DELAY_MS) {
          e.expiry = setTimeout(() => {
            remove(id, "its capability expired");
          }, delay);
          e.expiry.unref();
        }
      }
      return null;
    },
    begin: (id) => {
      const e = entries.get(id);
      if (e === undefined) return () => undefined;
      e.active += 1;
      e.used = ++clock;
      if (e.idle !== null) clearTimeout(e.idle);
      e.idle = null;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        e.active -= 1;
        e.used = ++clock;
        // A session forgotten meanwhile has no timer to arm.
        if (e.active === 0 && entries.get(id) === e) armIdle(e);
      };
    },
    remove,
    ids: () => [...entries.keys()],
  };
}
