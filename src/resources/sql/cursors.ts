import { createHmac, timingSafeEqual } from "node:crypto";
import { InvalidInput } from "../../kernel/index.js";
import { canonicalJson, sha256Hex } from "../../kernel/internal.js";

/*
 * Pagination cursors the model carries between calls, signed so it cannot
 * write its own. A cursor names where the next page starts, and is bound to
 * the capability that read the page and to the exact query (every part but
 * the cursor, canonically encoded): editing any byte, presenting it with
 * another capability (a parent, a child, a sibling), or with a query that
 * differs in any filter, order, field or limit, is refused. The rows a page
 * reaches are still decided by the capability on every call; the signature
 * only stops the cursor from choosing them.
 */

/** What a cursor holds: format version, capability id, query digest, where the next page starts. */
interface Content {
  readonly v: number;
  readonly cap: string;
  readonly query: string;
  readonly offset: number;
}

const REFUSED = "the cursor is not one this database issued for this query and capability; start again without a cursor";

/** Signs and opens cursors under one HMAC-SHA-256 key, held by the resource. */
export interface Cursors {
  /** A cursor for the page of `query` that starts at `offset`, for capability `capId`. */
  sign(capId: string, query: unknown, offset: number): string;
  /** Where the page starts; InvalidInput unless `cursor` was signed by this key for exactly this capability and query. */
  open(cursor: unknown, capId: string, query: unknown): number;
}

/** The digest a cursor binds: the query as canonical JSON, without its cursor. */
function queryDigest(query: unknown): string {
  const copy = { ...(query as Record<string, unknown>) };
  delete copy.cursor;
  return sha256Hex(canonicalJson(copy));
}

export function createCursors(key: Buffer): Cursors {
  const mac = (body: string) => createHmac("sha256", key).update(body).digest();
  return Object.freeze({
    sign(capId: string, query: unknown, offset: number): string {
      const content: Content = { v: 1, cap: capId, query: queryDigest(query), offset };
      const body = Buffer.from(JSON.stringify(content)).toString("base64url");
      return `${body}.${mac(body).toString("base64url")}`;
    },
    open(cursor: unknown, capId: string, query: unknown): number {
      if (typeof cursor !== "string" || cursor.length > 1024) throw new InvalidInput(REFUSED);
      const [body, signature, extra] = cursor.split(".");
      if (body === undefined || signature === undefined || extra !== undefined) throw new InvalidInput(REFUSED);
      const given = Buffer.from(signature, "base64url");
      const expected = mac(body);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new InvalidInput(REFUSED);
      // Signed by this key, so the content is what sign() wrote; it must still be for this capability and query.
      const content = JSON.parse(Buffer.from(body, "base64url").toString()) as Content;
      if (content.v !== 1 || content.cap !== capId || content.query !== queryDigest(query)) throw new InvalidInput(REFUSED);
      return content.offset;
    },
  });
}
