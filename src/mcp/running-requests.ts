import type { ServerResponse } from "node:http";

/*
 * The JSON-RPC requests of one session that are being answered, by id. The
 * MCP SDK's transport routes a response by its request's id, so a second
 * request reusing the id of one still running takes the first one's answer
 * and leaves the first unanswered (and its session busy, never idle). The
 * gateway refuses such a request before the transport sees it.
 */

/** A request id as a key: 1 and "1" are different ids in JSON-RPC. */
type IdKey = string;

function keyOf(id: string | number): IdKey {
  return `${typeof id}:${String(id)}`;
}

/** The ids of the requests in a POST body (one message or a batch); notifications and responses carry none. */
export function requestIds(body: unknown): (string | number)[] {
  const messages: unknown[] = Array.isArray(body) ? body : [body];
  const ids: (string | number)[] = [];
  for (const m of messages) {
    const id = field(m, "id");
    if (isId(id) && field(m, "method") !== undefined) ids.push(id);
  }
  return ids;
}

/** One claimed id: released once its response has closed and the session's server is done with it. */
interface Claim {
  /** Its HTTP response has closed (answered, or its client gone). */
  closed: boolean;
  /** The session's server took the request and has not answered it (nor seen it cancelled) yet. */
  pending: boolean;
}

/**
 * The ids of one session's requests under way. A request's id is held until
 * its response closes and, if the session's server took the request, until
 * the server has answered it: a client that goes away does not stop its
 * call, whose answer the transport would route to a new request reusing the
 * id (the later request got the first one's answer).
 */
export class RunningRequests {
  readonly #running = new Map<IdKey, Claim>();

  /**
   * Claims `ids` until `res` closes (answered, or its client gone) and the
   * server is done with each. Returns the first id that is running already,
   * or repeated among `ids`, and claims none; null once all are claimed.
   */
  claim(ids: readonly (string | number)[], res: ServerResponse): string | number | null {
    const keys = ids.map(keyOf);
    const fresh = new Set<IdKey>();
    for (const [i, key] of keys.entries()) {
      if (this.#running.has(key) || fresh.has(key)) return ids[i] as string | number;
      fresh.add(key);
    }
    if (fresh.size === 0) return null;
    const claims = [...fresh].map((key) => {
      const claim: Claim = { closed: false, pending: false };
      this.#running.set(key, claim);
      return [key, claim] as const;
    });
    res.once("close", () => {
      for (const [key, claim] of claims) {
        claim.closed = true;
        this.#release(key, claim);
      }
    });
    return null;
  }

  /** The session's server took request `id` (a claimed one): it stays claimed until answered, though its response may close first. */
  taken(id: string | number): void {
    const claim = this.#running.get(keyOf(id));
    if (claim !== undefined && !claim.closed) claim.pending = true;
  }

  /** The session's server answered request `id`, or it was cancelled (the server then sends no answer). */
  done(id: string | number): void {
    const key = keyOf(id);
    const claim = this.#running.get(key);
    if (claim === undefined) return;
    claim.pending = false;
    this.#release(key, claim);
  }

  /** How many ids are held. */
  get size(): number {
    return this.#running.size;
  }

  #release(key: IdKey, claim: Claim): void {
    if (claim.closed && !claim.pending && this.#running.get(key) === claim) this.#running.delete(key);
  }
}

/** What of the session's transport `followServer` looks at: the messages it hands the server, and what the server sends. */
interface ServerTransport {
  onmessage?: ((message: never, extra?: never) => void) | undefined;
  send(message: never, options?: never): Promise<void>;
}

/** The own property `key` of `message` (a JSON-RPC message, or its params), if it has one. */
function field(message: unknown, key: string): unknown {
  return typeof message === "object" && message !== null && Object.hasOwn(message, key) ? (message as Record<string, unknown>)[key] : undefined;
}

function isId(value: unknown): value is string | number {
  return typeof value === "string" || typeof value === "number";
}

/**
 * Has `running` learn from `transport` (once its server is connected) which
 * claimed requests the server took, and when it answered each: a response,
 * or a cancellation, after which the SDK's server sends none.
 */
export function followServer(transport: ServerTransport, running: RunningRequests): void {
  const deliver = transport.onmessage as ((message: unknown, extra?: unknown) => void) | undefined;
  const send = transport.send.bind(transport) as (message: unknown, options?: unknown) => Promise<void>;
  transport.onmessage = (message: unknown, extra?: unknown) => {
    const id = field(message, "id");
    if (isId(id) && field(message, "method") !== undefined) running.taken(id);
    if (field(message, "method") === "notifications/cancelled") {
      const requestId = field(field(message, "params"), "requestId");
      // As the SDK's server: a cancellation naming 0 or "" cancels nothing, and that request is still answered.
      if (isId(requestId) && requestId !== 0 && requestId !== "") running.done(requestId);
    }
    deliver?.(message, extra);
  };
  transport.send = (message: unknown, options?: unknown) => {
    const id = field(message, "id");
    const answer = isId(id) && (field(message, "result") !== undefined || field(message, "error") !== undefined);
    const sending = send(message, options);
    // Released once the transport has routed the answer, whether or not its stream was still there to take it.
    if (answer) void sending.then(() => { running.done(id); }, () => { running.done(id); });
    return sending;
  };
}
