import { validateHeaderName, validateHeaderValue } from "node:http";
import { HTTP_METHODS, InvalidInput, type AuditSink, type CredentialSource, type HttpMethod } from "../../kernel/index.js";
import { systemResolver, type Resolver } from "./resolve.js";

/** How a confined HTTP client is set up; every field is optional and validated. */
export interface HttpClientOptions {
  /** Maps host names to IP addresses; the system resolver (getaddrinfo, /etc/hosts included) by default. */
  readonly resolver?: Resolver;
  /** Deadline for a whole call: resolution, every redirect hop and reading the body. Default 30 000. */
  readonly timeoutMs?: number;
  /** Largest response body accepted, per hop. Default 10 MiB. */
  readonly maxResponseBytes?: number;
  /** Redirects followed in one call; one more fails with LimitExceeded, so 0 refuses every redirect. Default 5. */
  readonly maxRedirects?: number;
  /** PEM certificates of private CAs, trusted in addition to Node's bundled root certificates. */
  readonly ca?: readonly string[];
  /**
   * Where every call is recorded: one resource event per call, redirects
   * included, allowed or denied, written before the call settles; a failing
   * sink fails the call with AuditFailure. Without it, nothing is recorded.
   */
  readonly audit?: AuditSink;
  /**
   * The mints whose roots this resource accepts (their `Mint.id`s). A
   * capability another mint issued is denied at its first decision, before
   * anything is done. Without it, any mint's roots are accepted.
   */
  readonly mints?: readonly string[];
  /**
   * Each user's own credential per origin (a vault of agentcap/token, or a
   * token exchange): asked after a hop is authorized, with the capability
   * whose principal makes the request and the hop's origin, and sent as its
   * Authorization header (replacing one the caller gave). It is never part
   * of the response, the audit events or an error; a redirect to another
   * origin gets that origin's credential, never this one's.
   */
  readonly credentials?: CredentialSource;
}

/** The validated form of HttpClientOptions. */
export interface ClientSettings {
  readonly resolver: Resolver;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  readonly maxRedirects: number;
  readonly ca: readonly string[] | null;
  readonly credentials: CredentialSource | null;
}

/** What one call sends besides its URL. */
export interface HttpInit<M extends HttpMethod = HttpMethod> {
  /** Default GET. */
  readonly method?: M;
  /**
   * Header names are case-insensitive; hop-by-hop and routing headers (Host,
   * Connection, Proxy-*, …) are set by agentcap only, and path or method
   * overrides (X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override,
   * X-HTTP-Method, X-Method-Override) are refused.
   */
  readonly headers?: Readonly<Record<string, string>>;
  /** Not allowed with GET or HEAD. */
  readonly body?: string | Uint8Array;
  /** The tenant the request acts for, required by capabilities confined to tenants. */
  readonly tenant?: string;
}

/** The validated form of HttpInit: a snapshot, so later changes by the caller change nothing. */
export interface CallInput {
  readonly method: HttpMethod;
  /** Lower-case names, no prototype. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer | null;
  readonly tenant: string | undefined;
}

const CLIENT_KEYS = new Set(["resolver", "timeoutMs", "maxResponseBytes", "maxRedirects", "ca", "credentials"]);
const INIT_KEYS = new Set(["method", "headers", "body", "tenant"]);
const MAX_TIMEOUT_MS = 2_147_483_647; // setTimeout's limit
const MAX_BODY_BYTES = 2 ** 31 - 1;
const MAX_HEADERS = 256;

/**
 * Headers that decide where and how the bytes travel. A caller who could set
 * Host would reach another virtual host behind a granted address; the others
 * would let a caller smuggle a second request or change framing.
 */
const RESERVED_HEADERS = new Set(["host", "connection", "content-length", "transfer-encoding", "upgrade", "keep-alive", "te", "trailer", "expect"]);

/**
 * Headers that common servers and frameworks act on as the request's real
 * path (IIS URL Rewrite, Symfony, Zend) or method (Express method-override,
 * Spring HiddenHttpMethodFilter, Rails, ASP.NET): a POST granted on
 * /api/public would reach another path, or act as a DELETE. The grant
 * decided on the request line, so these are refused outright.
 */
const REWRITE_HEADERS = new Set(["x-original-url", "x-rewrite-url", "x-http-method-override", "x-http-method", "x-method-override"]);

function ownKeys(value: object, allowed: ReadonlySet<string>, what: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) throw new InvalidInput(`${what}: unknown option ${JSON.stringify(key)}; expected one of ${[...allowed].join(", ")}`);
  }
}

function own(value: object, key: string): unknown {
  return Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined;
}

function integer(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidInput(`createHttpClient: ${name} must be a whole number from ${min} to ${max}; got ${typeof value === "number" ? value : typeof value}`);
  }
  return value;
}

/** Validates client options; throws InvalidInput naming the bad option. */
export function parseClientOptions(options: unknown): ClientSettings {
  if (options === undefined) options = {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new InvalidInput("createHttpClient: options must be an object such as { timeoutMs: 5000 }");
  }
  ownKeys(options, CLIENT_KEYS, "createHttpClient");
  const resolver = own(options, "resolver") ?? systemResolver;
  if (typeof resolver !== "function") throw new InvalidInput("createHttpClient: resolver must be a function from a host name to a promise of IP addresses");
  const ca = own(options, "ca");
  if (ca !== undefined && (!Array.isArray(ca) || ca.length === 0 || !ca.every((c) => typeof c === "string" && c.includes("-----BEGIN CERTIFICATE-----")))) {
    throw new InvalidInput("createHttpClient: ca must be a non-empty array of PEM certificates (-----BEGIN CERTIFICATE-----)");
  }
  const credentials = own(options, "credentials");
  if (credentials !== undefined && (typeof credentials !== "object" || credentials === null || typeof (credentials as { authorization?: unknown }).authorization !== "function")) {
    throw new InvalidInput("createHttpClient: credentials must be a credential source, an object with an authorization(capability, origin) method, such as a vault");
  }
  return Object.freeze({
    credentials: (credentials as CredentialSource | undefined) ?? null,
    resolver: resolver as Resolver,
    timeoutMs: integer(own(options, "timeoutMs"), "timeoutMs", 1, MAX_TIMEOUT_MS, 30_000),
    maxResponseBytes: integer(own(options, "maxResponseBytes"), "maxResponseBytes", 0, MAX_BODY_BYTES, 10 * 1024 * 1024),
    maxRedirects: integer(own(options, "maxRedirects"), "maxRedirects", 0, 20, 5),
    ca: ca === undefined ? null : Object.freeze([...(ca as string[])]),
  });
}

function parseHeaders(value: unknown): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  if (value === undefined) return out;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidInput(`headers must be an object of names to strings, such as { accept: "application/json" }`);
  }
  const names = Object.keys(value);
  if (names.length > MAX_HEADERS) throw new InvalidInput(`headers: at most ${MAX_HEADERS} headers are allowed; got ${names.length}`);
  for (const name of names) {
    const v = own(value, name);
    const lower = name.toLowerCase();
    try {
      validateHeaderName(name);
      if (typeof v !== "string") throw new TypeError(`its value must be a string, got ${typeof v}`);
      validateHeaderValue(name, v);
    } catch (e) {
      throw new InvalidInput(`headers: ${JSON.stringify(name)} is not a valid header: ${(e as Error).message}`);
    }
    if (RESERVED_HEADERS.has(lower) || lower.startsWith("proxy-")) {
      throw new InvalidInput(`headers: ${JSON.stringify(name)} is set by agentcap itself and cannot be given`);
    }
    if (REWRITE_HEADERS.has(lower)) {
      throw new InvalidInput(`headers: ${JSON.stringify(name)} makes common servers act on another path or method than the one granted; it cannot be given`);
    }
    if (Object.hasOwn(out, lower)) throw new InvalidInput(`headers: ${JSON.stringify(name)} is given twice (header names are case-insensitive)`);
    out[lower] = v;
  }
  return out;
}

function parseBody(value: unknown, method: HttpMethod): Buffer | null {
  if (value === undefined) return null;
  if (method === "GET" || method === "HEAD") throw new InvalidInput(`a ${method} request cannot have a body`);
  // Copied, so the bytes sent are the bytes the caller passed at call time.
  if (typeof value === "string") return Buffer.from(value, "utf8");
  if (value instanceof Uint8Array) return Buffer.from(value);
  throw new InvalidInput(`body must be a string or a Uint8Array; got ${value === null ? "null" : typeof value}`);
}

/** Validates one call's init; throws InvalidInput naming the bad field. */
export function parseInit(init: unknown): CallInput {
  if (init === undefined) return { method: "GET", headers: Object.create(null) as Record<string, string>, body: null, tenant: undefined };
  if (typeof init !== "object" || init === null || Array.isArray(init)) {
    throw new InvalidInput(`request options must be an object such as { method: "POST", body: "…" }`);
  }
  ownKeys(init, INIT_KEYS, "request options");
  const method = own(init, "method") ?? "GET";
  if (typeof method !== "string" || !(HTTP_METHODS as readonly string[]).includes(method)) {
    throw new InvalidInput(`method must be one of ${HTTP_METHODS.join(", ")} (upper case); got ${JSON.stringify(method)}`);
  }
  const m = method as HttpMethod;
  const tenant = own(init, "tenant");
  if (tenant !== undefined && typeof tenant !== "string") throw new InvalidInput(`tenant must be a string; got ${typeof tenant}`);
  return { method: m, headers: parseHeaders(own(init, "headers")), body: parseBody(own(init, "body"), m), tenant };
}
