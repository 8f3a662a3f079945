import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { authorizeTrusted, canonicalHttpUrl, checkTrusted, defined, isIpLiteral, unbracket, type TrustedMints } from "../../kernel/internal.js";
import {
  AgentcapError,
  denialError,
  HttpRequestFailed,
  type Capability,
  type HttpMethod,
  type HttpRequest,
} from "../../kernel/index.js";
import type { Access } from "../audited.js";

/**
 * Maps a host name to the IP addresses it answers with, preferred first.
 * Injectable, so a deployment can pin names and tests can stand in for hosts.
 */
export type Resolver = (hostname: string) => Promise<readonly string[]>;

/** The operating system's resolver (getaddrinfo, so /etc/hosts counts), in the order it answers. */
export const systemResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true, order: "verbatim" })).map((a) => a.address);

/** More answers than this is not a real host; it bounds the checks one call can cost. */
const MAX_ANSWERS = 32;

/** One hop as the kernel sees it, before the address is known. */
export interface HopRequest {
  readonly method: HttpMethod;
  readonly url: URL;
  readonly tenant: string | undefined;
}

/** The kernel's request for a hop; `address` is null only for the check made before resolving. */
export function kernelRequest(hop: HopRequest, address: string | null): HttpRequest {
  return {
    action: "http.request",
    method: hop.method,
    url: hop.url.href,
    ...(address === null ? {} : { address }),
    ...defined({ tenant: hop.tenant }),
  };
}

/** Settles like `promise`, or rejects with the signal's reason as soon as it aborts. */
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  let onAbort = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      reject(signal.reason as Error);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** The resolver's answers, validated and without duplicates; never empty. */
async function resolve(resolver: Resolver, host: string, signal: AbortSignal): Promise<readonly [string, ...string[]]> {
  let answers: unknown;
  try {
    answers = await untilAborted(resolver(host), signal);
  } catch (e) {
    if (e instanceof AgentcapError) throw e;
    throw new HttpRequestFailed(`could not resolve ${host}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (!Array.isArray(answers) || answers.length === 0) throw new HttpRequestFailed(`the resolver found no address for ${host}`);
  if (answers.length > MAX_ANSWERS) throw new HttpRequestFailed(`the resolver gave ${answers.length} addresses for ${host}; at most ${MAX_ANSWERS} are accepted`);
  for (const a of answers) {
    // A zone id (fe80::1%eth0) picks an interface the grant cannot name, so it is refused like a non-address.
    if (typeof a !== "string" || isIP(a) === 0 || a.includes("%")) {
      throw new HttpRequestFailed(`the resolver answered ${JSON.stringify(a)} for ${host}, which is not an IP address`);
    }
  }
  return [...new Set(answers as string[])] as [string, ...string[]];
}

/**
 * Authorizes one hop and returns the addresses it may connect to, preferred first.
 *
 * Nothing leaves the process before the capability has had its say: the
 * request is first checked without an address, so a URL the capability does
 * not grant is denied before any DNS query (a query alone can leak data).
 * Then every answer is checked, and the request is denied if any answer is
 * denied: a name that also points at a private network is treated as an
 * attack, not shopped around for an allowed answer. The first answer is
 * authorized (charged once for the hop). The caller connects only to these
 * checked addresses, and never looks the name up again, so there is no
 * second answer an attacker could rebind. Every decision is reported to
 * `access`, so a denied hop or address is what the audit event records, and
 * the intent is recorded (`access.proceed`) once the URL is allowed, before
 * the name is looked up or anything is sent.
 */
export async function authorizeHop(
  access: Access,
  cap: Capability,
  hop: HopRequest,
  resolver: Resolver,
  signal: AbortSignal,
  trusted: TrustedMints = null,
): Promise<readonly string[]> {
  const decide = (request: HttpRequest, charge: boolean): void => {
    const decision = access.decided(request, charge ? authorizeTrusted(trusted, cap, request) : checkTrusted(trusted, cap, request));
    if (!decision.allowed) throw denialError(decision);
  };
  const host = unbracket(hop.url.hostname);
  if (isIpLiteral(host)) {
    decide(kernelRequest(hop, host), true);
    await access.proceed();
    return [host];
  }
  decide(kernelRequest(hop, null), false);
  // Recorded before the name is looked up: a DNS query already tells the network where the request goes.
  await access.proceed();
  const answers = await resolve(resolver, host, signal);
  const [first, ...rest] = answers;
  for (const address of rest) decide(kernelRequest(hop, address), false);
  decide(kernelRequest(hop, first), true);
  return answers;
}

/**
 * Confines a URL that another program will fetch, exactly as this client
 * confines the first hop of its own calls: canonicalized (WHATWG parsing, no
 * userinfo, default ports, dot segments removed; InvalidInput otherwise),
 * the capability asked before any DNS query, every address `resolver`
 * answers checked (loopback, private and link-local ones need a grant that
 * names them), and one use charged. Every decision is reported to `access`,
 * which records the intent once the URL is allowed (before the name is
 * looked up). Resolves to the canonical URL and the checked addresses.
 * Unlike the client, nothing here can make the other program connect to
 * those addresses; the caller says what that leaves open.
 */
export async function authorizeUrl(
  access: Access,
  cap: Capability,
  request: { readonly method: HttpMethod; readonly url: string; readonly tenant?: string },
  resolver: Resolver,
  signal: AbortSignal,
): Promise<{ readonly url: string; readonly addresses: readonly string[] }> {
  const url = canonicalHttpUrl(request.url);
  const hop: HopRequest = { method: request.method, url, tenant: request.tenant };
  access.about(kernelRequest(hop, null));
  const addresses = await authorizeHop(access, cap, hop, resolver, signal);
  return { url: url.href, addresses };
}
