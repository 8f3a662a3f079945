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
    if (typeof m !== "object" || m === null || !Object.hasOwn(m, "method") || !Object.hasOwn(m, "id")) continue;
    const id = (m as { id: unknown }).id;
    if (typeof id === "string" || typeof id === "number") ids.push(id);
  }
  return ids;
}

/** The ids of one session's requests under way. */
export class RunningRequests {
  readonly #running = new Set<IdKey>();

  /**
   * Claims `ids` until `res` closes (answered, or its client gone). Returns
   * the first id that is running already, or repeated among `ids`, and
   * claims none; null once all are claimed.
   */
  claim(ids: readonly (string | number)[], res: ServerResponse): string | number | null {
    const keys = ids.map(keyOf);
    const fresh = new Set<IdKey>();
    for (const [i, key] of keys.entries()) {
      if (this.#running.has(key) || fresh.has(key)) return ids[i] as string | number;
      fresh.add(key);
    }
    if (fresh.size === 0) return null;
    for (const key of fresh) this.#running.add(key);
    res.once("close", () => {
      for (const key of fresh) this.#running.delete(key);
    });
    return null;
  }
}
