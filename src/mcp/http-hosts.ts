/**
 * Which Host and Origin headers the HTTP gateway answers. The MCP transport
 * spec asks for both checks against DNS rebinding: a web page on a name the
 * attacker controls can point that name at the gateway's address, and the
 * browser then sends the page's requests, with the page's name in Host and
 * its origin in Origin, to a gateway that may trust anything on loopback.
 *
 * The gateway answers to its listen address (the configured host and the
 * address bound, with the port), to localhost, 127.0.0.1 and [::1] when it
 * listens on loopback, to the machine's own addresses when it listens on
 * every interface, and to the configured `allowedHosts` (a reverse proxy's
 * public name). An Origin, when a request carries one, must name one of
 * those hosts or be one of the configured `allowedOrigins`.
 */
import type { AddressInfo } from "node:net";
import { isIPv6 } from "node:net";
import { networkInterfaces } from "node:os";
import { classifyAddress } from "../kernel/internal.js";

/** A host the gateway answers to: a normalized name or address, and a port, or null for any port. */
export interface HostEntry {
  readonly hostname: string;
  readonly port: string | null;
}

/**
 * Parses `value` as a Host header or a configured host: `name`,
 * `name:port`, `1.2.3.4:port`, `[::1]:port`. The name is normalized as URLs
 * normalize it (lower case, IDNA). Port 80 written out is kept as "80";
 * no port gives null. Null when `value` is anything else (userinfo, a path,
 * a scheme, spaces).
 */
export function parseHost(value: string): HostEntry | null {
  if (value === "" || /[/?#@\\\s%]|:$/.test(value)) return null;
  const url = URL.parse(`http://${value}`);
  if (url === null || url.pathname !== "/" || url.username !== "" || url.password !== "") return null;
  const port = url.port !== "" ? url.port : /:\d+$/.test(value) ? "80" : null;
  return { hostname: url.hostname, port };
}

/** True when `entry` names `host` (whose port is known). */
function matches(entry: HostEntry, host: { readonly hostname: string; readonly port: string }): boolean {
  return entry.hostname === host.hostname && (entry.port === null || entry.port === host.port);
}

/** Decides the Host and Origin of each request. */
export interface RequestSources {
  /** True when `host` (a Host header, or a request target's authority) is one the gateway answers to. */
  hostAllowed(host: string | undefined): boolean;
  /** True when `origin` (an Origin header) may call the gateway. */
  originAllowed(origin: string): boolean;
}

const bracketed = (address: string) => (isIPv6(address) ? `[${address}]` : address);

/**
 * The sources of a gateway bound at `bound`, listening on `listenHost` as
 * configured, with the configured `allowedHosts` and `allowedOrigins`
 * (validated already).
 */
export function requestSources(
  bound: AddressInfo,
  listenHost: string,
  config: { readonly allowedHosts: readonly string[]; readonly allowedOrigins: readonly string[] },
): RequestSources {
  const port = String(bound.port);
  const names = [listenHost, bound.address];
  if (classifyAddress(bound.address) === "loopback") names.push("localhost", "127.0.0.1", "::1");
  if (bound.address === "0.0.0.0" || bound.address === "::") {
    names.push("localhost", ...Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
  }
  const entries: HostEntry[] = [];
  for (const text of [...names.map((n) => `${bracketed(n)}:${port}`), ...config.allowedHosts]) {
    const entry = parseHost(text);
    if (entry !== null) entries.push(entry);
  }
  const origins = new Set(config.allowedOrigins);

  const hostAllowed = (host: string | undefined): boolean => {
    const parsed = host === undefined ? null : parseHost(host);
    if (parsed === null) return false;
    const known = { hostname: parsed.hostname, port: parsed.port ?? "80" };
    return entries.some((e) => matches(e, known));
  };
  const originAllowed = (origin: string): boolean => {
    if (origins.has(origin)) return true;
    const url = URL.parse(origin);
    if (url === null || (url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== origin) return false;
    const known = { hostname: url.hostname, port: url.port !== "" ? url.port : url.protocol === "https:" ? "443" : "80" };
    return entries.some((e) => matches(e, known));
  };
  return Object.freeze({ hostAllowed, originAllowed });
}
