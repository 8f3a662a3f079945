import { InvalidInput, LimitExceeded, revocationSignal, type Capability, type HttpMethod } from "../../kernel/index.js";
import { canonicalHttpUrl } from "../../kernel/internal.js";
import { audited, auditOption, ownSettings, type Access } from "../audited.js";
import { parseClientOptions, parseInit, type HttpClientOptions, type HttpInit } from "./options.js";
import { redirectFrom, type Outgoing } from "./redirect.js";
import { authorizeHop, kernelRequest, type HopRequest } from "./resolve.js";
import { createTransport, type RawResponse } from "./transport.js";
import { trustedMintsOption } from "../../kernel/internal.js";

export type { HttpClientOptions, HttpInit } from "./options.js";
export { systemResolver, type Resolver } from "./resolve.js";

/** The final response of a call: plain data, fully read. */
export interface HttpResponse {
  /** The canonical URL that answered, after any redirects. */
  readonly url: string;
  readonly status: number;
  /** Lower-case names, no prototype; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  /** Exactly the bytes received; never decompressed. */
  readonly body: Uint8Array;
  /** The URLs that redirected, in order, before `url` answered. */
  readonly redirects: readonly string[];
}

/** A confined HTTP client: the only way to it is a capability that grants the request. */
export interface HttpClient {
  /**
   * Sends one request with the authority of `cap` and reads the response.
   * The URL is canonicalized (WHATWG parsing; userinfo, encoded separators
   * and non-http(s) schemes refused with InvalidInput), the capability is
   * asked before any I/O, every address the host name resolves to is checked
   * (loopback, private and link-local ones need a grant that names them), and
   * connections go to checked addresses only, the next one tried when one
   * refuses to connect. Redirects are followed here, each hop authorized
   * again and charged as a use. Rejects with the kernel's denial errors,
   * InvalidInput, LimitExceeded (timeoutMs, maxResponseBytes, maxRedirects),
   * Revoked as soon as the capability is revoked mid-flight, or
   * HttpRequestFailed when the network fails. With an audit sink, every hop
   * is recorded as its own event, its intent before anything is looked up or
   * sent (a redirect followed is a second request, with its own URL).
   */
  request<M extends HttpMethod = "GET">(cap: Capability<{ readonly http: NoInfer<M> }>, url: string, init?: HttpInit<M>): Promise<HttpResponse>;
  /** Closes the pooled connections; calls made afterwards open new ones. */
  close(): void;
}

/** An AbortSignal for one call: it fires with Revoked when the capability is revoked, or LimitExceeded at the deadline. */
function callSignal(cap: Capability, timeoutMs: number, what: string): { signal: AbortSignal; dispose: () => void } {
  const revocation = revocationSignal(cap);
  const controller = new AbortController();
  const onRevoke = () => {
    controller.abort(revocation.signal.reason);
  };
  if (revocation.signal.aborted) onRevoke();
  else revocation.signal.addEventListener("abort", onRevoke, { once: true });
  const timer = setTimeout(() => {
    controller.abort(new LimitExceeded(`${what} did not complete within timeoutMs, ${timeoutMs} ms`, "timeoutMs"));
  }, timeoutMs);
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      revocation.signal.removeEventListener("abort", onRevoke);
      revocation.dispose();
    },
  };
}

/**
 * Creates a confined HTTP client with its own connection pools, recording
 * every call in `options.audit` when given; throws InvalidInput for bad options.
 */
export function createHttpClient(options?: HttpClientOptions): HttpClient {
  const sink = auditOption(options, "createHttpClient");
  const trusted = trustedMintsOption(options, "createHttpClient");
  const settings = parseClientOptions(ownSettings(options));
  const transport = createTransport(settings.ca);

  /** One hop: authorized, recorded, sent; one audit event each, so every request that left the process is in the log under its own URL. */
  const sendHop = (cap: Capability, hop: Outgoing, tenant: string | undefined, signal: AbortSignal): Promise<RawResponse> =>
    audited(
      sink,
      cap,
      async (access: Access) => {
        const request: HopRequest = { method: hop.method, url: hop.url, tenant };
        access.about(kernelRequest(request, null));
        const addresses = await authorizeHop(access, cap, request, settings.resolver, signal, trusted);
        // Looked up only now, for this hop's own origin, and put on the outgoing hop alone: nothing the caller holds carries it.
        const authorization = settings.credentials === null ? null : await settings.credentials.authorization(cap, hop.url.origin, signal);
        const headers = authorization === null ? hop.headers : { ...hop.headers, authorization };
        return transport.send({ ...hop, headers, addresses }, settings.maxResponseBytes, signal);
      },
      (res) => res.body.byteLength,
    );

  const request = async (cap: Capability, url: string, init?: HttpInit): Promise<HttpResponse> => {
    if (typeof url !== "string") throw new InvalidInput(`url must be a string such as "https://api.example.com/v1/items"; got ${typeof url}`);
    const input = parseInit(init);
    let hop: Outgoing = { url: canonicalHttpUrl(url), method: input.method, headers: input.headers, body: input.body };
    const call = callSignal(cap, settings.timeoutMs, `${input.method} ${hop.url.href}`);
    try {
      const redirects: string[] = [];
      for (;;) {
        const res = await sendHop(cap, hop, input.tenant, call.signal);
        const next = redirectFrom(hop, res.status, res.headers.location);
        if (next === null) {
          return Object.freeze({ url: hop.url.href, status: res.status, headers: res.headers, body: res.body, redirects: Object.freeze(redirects) });
        }
        if (redirects.length === settings.maxRedirects) {
          throw new LimitExceeded(`${url} redirected more than maxRedirects (${settings.maxRedirects}) times; the next hop was ${next.url.href}`, "maxRedirects");
        }
        redirects.push(hop.url.href);
        hop = next;
      }
    } finally {
      call.dispose();
    }
  };

  return Object.freeze({
    request,
    close: () => {
      transport.close();
    },
  });
}
