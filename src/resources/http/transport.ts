import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type RequestOptions } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { rootCertificates } from "node:tls";
import { isIpLiteral, unbracket } from "../../kernel/internal.js";
import { AgentcapError, HttpRequestFailed, LimitExceeded, type HttpMethod } from "../../kernel/index.js";
import { freshBytes } from "../fresh-bytes.js";

/** One authorized hop: the canonical URL, and the checked addresses it may connect to, preferred first. */
export interface Hop {
  readonly url: URL;
  readonly addresses: readonly string[];
  readonly method: HttpMethod;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer | null;
}

/** A response read in full: plain data. */
export interface RawResponse {
  readonly status: number;
  /** Lower-case names, no prototype; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/** Sends hops over the client's own connection pools. */
export interface Transport {
  send(hop: Hop, maxResponseBytes: number, signal: AbortSignal): Promise<RawResponse>;
  close(): void;
}

function plainHeaders(headers: IncomingHttpHeaders): Readonly<Record<string, string>> {
  // No prototype, so a header named __proto__ is just a header.
  const out = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = typeof value === "string" ? value : value.join(", ");
  }
  return Object.freeze(out);
}

/** Errors that mean no connection was made, so nothing reached the server and the next checked address may be tried. */
const CONNECT_ERRORS = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL"]);

function failedToConnect(e: unknown): e is HttpRequestFailed {
  const code: unknown = e instanceof HttpRequestFailed && e.cause instanceof Error ? (e.cause as NodeJS.ErrnoException).code : undefined;
  return typeof code === "string" && CONNECT_ERRORS.has(code);
}

/**
 * Creates the client's private connection pools. The socket is opened to a
 * checked address itself (an IP, so Node does no lookup of its own), while the
 * Host header and the TLS server name stay the URL's host name, so the
 * certificate is verified for the name. Pooled connections are keyed by that
 * address (and by server name for TLS), so a kept-alive socket is only ever
 * reused for the same checked address. The agents never use a proxy.
 */
export function createTransport(ca: readonly string[] | null): Transport {
  const http = new HttpAgent({ keepAlive: true });
  const https = new HttpsAgent({ keepAlive: true, ...(ca === null ? {} : { ca: [...rootCertificates, ...ca] }) });

  const attempt = (hop: Hop, address: string, maxResponseBytes: number, signal: AbortSignal): Promise<RawResponse> =>
    new Promise<RawResponse>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason as Error);
        return;
      }
      const { url } = hop;
      const secure = url.protocol === "https:";
      const hostname = unbracket(url.hostname);
      const options: RequestOptions & { servername?: string } = {
        host: address,
        port: url.port === "" ? (secure ? 443 : 80) : Number(url.port),
        path: url.pathname + url.search,
        method: hop.method,
        headers: { ...hop.headers, host: url.host },
        agent: secure ? https : http,
        ...(secure && !isIpLiteral(hostname) ? { servername: hostname } : {}),
      };
      const where = `${hop.method} ${url.href} via ${address}`;
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        req.destroy();
        reject(error);
      };
      const wrap = (e: Error) => (e instanceof AgentcapError ? e : new HttpRequestFailed(`${where} failed: ${e.message}`, { cause: e }));
      const tooLarge = (size: string) =>
        new LimitExceeded(`${where}: the response body (${size}) is larger than maxResponseBytes, ${maxResponseBytes} bytes`, "maxResponseBytes");
      const onAbort = () => {
        fail(signal.reason as Error);
      };

      const req = (secure ? httpsRequest : httpRequest)(options);
      req.on("error", (e) => {
        fail(wrap(e));
      });
      req.on("response", (res: IncomingMessage) => {
        res.on("error", (e) => {
          fail(wrap(e));
        });
        const declared = Number(res.headers["content-length"]);
        if (declared > maxResponseBytes) {
          fail(tooLarge(`Content-Length ${declared}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxResponseBytes) fail(tooLarge(`${size} bytes received so far`));
          else chunks.push(chunk);
        });
        res.on("end", () => {
          if (settled) return;
          settled = true;
          signal.removeEventListener("abort", onAbort);
          resolve({ status: res.statusCode ?? 0, headers: plainHeaders(res.headers), body: freshBytes(chunks, size) });
        });
      });
      signal.addEventListener("abort", onAbort, { once: true });
      req.end(hop.body ?? undefined);
    });

  /*
   * Every address was checked before the hop was sent, so when one refuses
   * the connection (an IPv6 answer without an IPv6 route, a host that is
   * down) the next may be tried: nothing has reached a server yet.
   */
  const send = async (hop: Hop, maxResponseBytes: number, signal: AbortSignal): Promise<RawResponse> => {
    const failures: HttpRequestFailed[] = [];
    for (const address of hop.addresses) {
      try {
        return await attempt(hop, address, maxResponseBytes, signal);
      } catch (e) {
        if (!failedToConnect(e)) throw e;
        failures.push(e);
      }
    }
    const [only] = failures;
    if (only !== undefined && failures.length === 1) throw only;
    throw new HttpRequestFailed(`${hop.method} ${hop.url.href} could not connect to any of its addresses: ${failures.map((f) => f.message).join("; ")}`, {
      cause: failures.at(-1),
    });
  };

  return Object.freeze({
    send,
    close: () => {
      http.destroy();
      https.destroy();
    },
  });
}
