import { canonicalHttpUrl } from "../../kernel/internal.js";
import { InvalidInput, type HttpMethod } from "../../kernel/index.js";

/** What a hop sends, before it is authorized. */
export interface Outgoing {
  readonly url: URL;
  readonly method: HttpMethod;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer | null;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** The caller's credentials: meant for the origin they were given for, so never sent on to another one. */
const CREDENTIAL_HEADERS = ["authorization", "cookie"];

/** Headers that describe a body; dropped with the body when a redirect turns the request into a GET. */
const BODY_HEADERS = ["content-type", "content-encoding", "content-language", "content-location"];

function without(headers: Readonly<Record<string, string>>, names: readonly string[]): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(headers)) if (!names.includes(k)) out[k] = v;
  return out;
}

/**
 * The request a response redirects to, or null when the response is final
 * (not 301/302/303/307/308, or no Location). The Location is resolved against
 * the current URL and canonicalized like a caller's URL (a refused one throws
 * InvalidInput naming both URLs); the method and body change as browsers
 * change them (303, and POST after 301/302, become GET without a body), and
 * credentials are dropped when the origin changes. The caller authorizes the
 * result like any other request.
 */
export function redirectFrom(current: Outgoing, status: number, location: string | undefined): Outgoing | null {
  if (!REDIRECT_STATUSES.has(status) || location === undefined) return null;
  let url: URL;
  try {
    url = canonicalHttpUrl(new URL(location, current.url).href);
  } catch (e) {
    const why = e instanceof InvalidInput ? e.message : "it is not a valid URL";
    throw new InvalidInput(`${current.url.href} redirected (${status}) to ${JSON.stringify(location)}, which is refused: ${why}`);
  }
  const toGet = (status === 303 && current.method !== "HEAD") || ((status === 301 || status === 302) && current.method === "POST");
  let headers = toGet ? without(current.headers, BODY_HEADERS) : current.headers;
  if (url.origin !== current.url.origin) headers = without(headers, CREDENTIAL_HEADERS);
  return { url, method: toGet ? "GET" : current.method, headers, body: toGet ? null : current.body };
}
