/**
 * The gateway's configuration: one JSON file (or a module whose default
 * export is the same object), validated with zod. Every bad field is named in
 * one InvalidInput; relative paths (stores, keys, tool roots, and `fs` paths
 * in the policy's grants) are resolved against the file's folder, so
 * a configuration means the same thing from any working directory.
 */
import path from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { InvalidInput, parseGrant, type Grant } from "../kernel/index.js";
import { defined, originProblem, readBoundedText } from "../kernel/internal.js";
import { parseHost } from "./http-hosts.js";

const nonEmpty = z.string().min(1, "must not be empty");
const grant = z.unknown().superRefine((value, ctx) => {
  try {
    parseGrant(value);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: e instanceof Error ? e.message : String(e) });
  }
});

/*
 * Policy grants carry domains only: merging conditions from several roles
 * would be ambiguous, and tenants come from the principal.
 */
const CONDITION_KEYS = ["expiresAt", "maxUses", "budget", "tenants"];
const policyGrant = grant.superRefine((value, ctx) => {
  if (typeof value !== "object" || value === null) return;
  for (const key of CONDITION_KEYS.filter((k) => Object.hasOwn(value, k))) {
    ctx.addIssue({ code: "custom", path: [key], message: "policy grants name domains only; conditions belong on tokens, and tenants on principals" });
  }
});

const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, "must be a scope token (printable ASCII, no spaces, quotes or backslashes)");
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name");

/**
 * What a token exchange asks the provider for (RFC 8693 §2.1): the target
 * service by logical name (`audience`) and/or URI (`resource`), and scopes.
 */
const exchangeTargetSchema = z.strictObject({
  audience: z.string().min(1).max(1024).optional(),
  resource: z.url({ error: "must be an absolute URI naming the target service (RFC 8707), such as https://api.example.com/" }).optional(),
  scopes: z.array(scopeToken).max(64).optional(),
});

/** A constraint on one argument of an upstream tool: the request its value stands for. */
export const ARGUMENT_KINDS = Object.freeze(["fs.read", "fs.write", "fs.list", "fs.delete", "http.GET", "http.HEAD", "http.POST", "http.PUT", "http.PATCH", "http.DELETE"] as const);
export type ArgumentKind = (typeof ARGUMENT_KINDS)[number];

const argumentKinds = z.union([z.enum(ARGUMENT_KINDS), z.array(z.enum(ARGUMENT_KINDS)).min(1)]);

const upstreamCommon = {
  name: z.string().regex(/^[A-Za-z0-9-]{1,24}$/, "must be 1 to 24 letters, digits or -, as it prefixes tool names (<name>__<tool>)"),
  /** Folder relative paths in fs-constrained arguments resolve against, as the upstream would resolve them. */
  root: nonEmpty.optional(),
  /**
   * How URL arguments name their host: "resolve" (default) resolves a name and checks every address, but the
   * upstream resolves it again itself; "ip-literal" takes IP addresses only, so the address checked is the one used.
   */
  urlHosts: z.enum(["resolve", "ip-literal"]).optional(),
  /** The upstream tools to expose (others stay hidden), each with its constrained arguments. */
  tools: z.record(z.string().min(1).max(64), z.record(z.string().min(1), argumentKinds)),
};

const upstreamSchema = z.union([
  z.strictObject({ ...upstreamCommon, command: nonEmpty, args: z.array(z.string()).optional(), env: z.record(z.string(), z.string()).optional() }),
  z.strictObject({
    ...upstreamCommon,
    url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
    /**
     * Whose credential the upstream's requests carry, over a connection of each caller's own: "per-principal", the
     * caller's own for the upstream's origin from the vault; "token-exchange", a token the identity provider issues
     * for the upstream in exchange for the caller's access token (RFC 8693, oauth.tokenExchange).
     */
    credentials: z.enum(["per-principal", "token-exchange"]).optional(),
    /** For "token-exchange": what the exchanged token is asked for; by default the upstream's URL as the resource. */
    exchange: exchangeTargetSchema.optional(),
  }),
]);

const storeSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("sqlite"), path: nonEmpty }),
  z.strictObject({
    kind: z.literal("postgres"),
    url: nonEmpty.optional(),
    urlFromEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name").optional(),
    schema: z.string().regex(/^[a-z_][a-z0-9_]{0,40}$/, "must be a lower-case identifier of at most 41 characters").optional(),
  }),
]);

/** The gateway's resources a tool module may be endowed with, by the name it sees them under. */
export const ENDOWABLE = Object.freeze(["files", "http", "database", "exec"] as const);

/**
 * A tool module the gateway serves: loaded sandboxed (SES in a worker, see
 * agentcap/sandbox), endowed with the acting methods of the named resources
 * (which must be configured) and plain `data`; `trusted: true` loads it in
 * this process instead, recorded in every event of its tools.
 */
const toolModuleSchema = z
  .strictObject({
    path: nonEmpty,
    endow: z.array(z.enum(ENDOWABLE)).optional(),
    data: z.record(z.string().regex(/^[A-Za-z_$][\w$]{0,63}$/, "must be an identifier"), z.json()).optional(),
    allow: z.array(z.string().min(1).max(214)).max(64).optional(),
    timeoutMs: z.number().int().positive().max(3_600_000).optional(),
    memoryMb: z.number().int().min(16).max(16_384).optional(),
    trusted: z.boolean().optional(),
  })
  .refine((m) => m.trusted !== true || (m.allow === undefined && m.timeoutMs === undefined && m.memoryMb === undefined), "allow, timeoutMs and memoryMb apply to sandboxed modules; a trusted module runs unconfined")
  .refine((m) => Object.keys(m.data ?? {}).every((k) => !(ENDOWABLE as readonly string[]).includes(k)), "data must not use the names of endowed resources (files, http, database, exec)");

/** Signed checkpoints of the audit log: the signing key's file (kept away from the database), the checkpoint file, and how often. */
const checkpointsSchema = z.strictObject({
  keyFile: nonEmpty,
  createKeyIfMissing: z.boolean().optional(),
  file: nonEmpty.optional(),
  everyEntries: z.number().int().min(1).optional(),
  everySeconds: z.number().min(0.01).max(2_000_000).optional(),
});

/** The audit log shipped to an OpenTelemetry collector as it is written (OTLP/HTTP JSON logs). */
const otlpSchema = z.strictObject({
  endpoint: z.url({ protocol: /^https?$/, error: "must be the collector's http(s) logs endpoint, such as http://127.0.0.1:4318/v1/logs" }),
  headers: z.record(nonEmpty, z.string()).optional(),
  maxQueue: z.number().int().min(1).max(10_000_000).optional(),
  maxBatch: z.number().int().min(1).max(100_000).optional(),
});

/** The audit store may trade the fsync of every commit for speed: "normal" keeps the log consistent after a crash but may lose its last events on power loss. */
const auditSchema = z.union([
  z.strictObject({ kind: z.literal("sqlite"), path: nonEmpty, synchronous: z.enum(["full", "normal"]).optional(), checkpoints: checkpointsSchema.optional(), otlp: otlpSchema.optional() }),
  storeSchema.options[1].extend({ checkpoints: checkpointsSchema.optional(), otlp: otlpSchema.optional() }),
]);

const principalSchema = z.strictObject({
  tenants: z.array(nonEmpty).optional(),
  roles: z.array(nonEmpty).optional(),
  grant: policyGrant.optional(),
});

/** A whole number from `min` to `max`, and what it counts, for the message when it is not. */
const wholeNumber = (min: number, max: number, unit: string) => {
  const message = `must be a whole number of ${unit} from ${min} to ${max}`;
  return z.number({ error: message }).refine((v) => Number.isInteger(v) && v >= min && v <= max, message);
};

/** setTimeout's limit: a longer time would fire at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;

/** Bounds on every HTTP request, so a slow or huge one cannot hold the gateway; see `HttpLimits` for each. */
const limitsSchema = z.strictObject({
  headersTimeoutMs: wholeNumber(1, MAX_TIMEOUT_MS, "milliseconds").optional(),
  requestTimeoutMs: wholeNumber(1, MAX_TIMEOUT_MS, "milliseconds").optional(),
  maxHeaderBytes: wholeNumber(1024, 1024 * 1024, "bytes").optional(),
  maxBodyBytes: wholeNumber(1, 1024 * 1024 * 1024, "bytes").optional(),
  keepAliveTimeoutMs: wholeNumber(1, MAX_TIMEOUT_MS, "milliseconds").optional(),
});

/**
 * Connections queued before the gateway accepts them when the configuration
 * names no backlog. Node's own default (511) overflowed under 1,000 sessions
 * on one busy gateway, and a dropped connection waits 1, 3, 7 s for its SYN to
 * be sent again; Linux caps what is asked at net.core.somaxconn (4,096 by
 * default since 5.4).
 */
export const DEFAULT_BACKLOG = 4096;

/** The limits a gateway has when its configuration names none. */
export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 4 * 1024 * 1024,
  keepAliveTimeoutMs: 65_000,
});

/** The configured limits, with defaults for those not given. */
function httpLimits(given: z.output<typeof limitsSchema> | undefined): HttpLimits {
  const d = DEFAULT_HTTP_LIMITS;
  return {
    headersTimeoutMs: given?.headersTimeoutMs ?? d.headersTimeoutMs,
    requestTimeoutMs: given?.requestTimeoutMs ?? d.requestTimeoutMs,
    maxHeaderBytes: given?.maxHeaderBytes ?? d.maxHeaderBytes,
    maxBodyBytes: given?.maxBodyBytes ?? d.maxBodyBytes,
    keepAliveTimeoutMs: given?.keepAliveTimeoutMs ?? d.keepAliveTimeoutMs,
  };
}

/** Bounds on the sessions the HTTP gateway keeps and the calls it runs at once; see `SessionLimits` for each. */
const sessionsSchema = z.strictObject({
  idleTimeoutMs: wholeNumber(1, MAX_TIMEOUT_MS, "milliseconds").optional(),
  max: wholeNumber(1, 1_000_000, "sessions").optional(),
  maxPerPrincipal: wholeNumber(1, 1_000_000, "sessions").optional(),
  maxPerToken: wholeNumber(1, 1_000_000, "sessions").optional(),
  maxConcurrentCalls: wholeNumber(1, 100_000, "calls").optional(),
  maxCallsPerSession: wholeNumber(1, 100_000, "calls").optional(),
  maxQueuedCalls: wholeNumber(0, 1_000_000, "calls").optional(),
});

/** The session bounds a gateway has when its configuration names none. */
export const DEFAULT_SESSION_LIMITS: SessionLimits = Object.freeze({
  idleTimeoutMs: 10 * 60_000,
  max: 1000,
  maxPerPrincipal: 100,
  maxPerToken: 20,
  maxConcurrentCalls: 64,
  maxCallsPerSession: 16,
  maxQueuedCalls: 1024,
});

/**
 * A JOSE `typ` as compared: RFC 7515 lets it leave out the media type's `application/`, and media types ignore case. Only ASCII
 * letters are folded: toLowerCase would also turn U+212A KELVIN SIGN into k, making a type no media type can be equal to one.
 */
export function mediaSubtype(type: string): string {
  const lower = type.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
  return lower.startsWith("application/") ? lower.slice("application/".length) : lower;
}

/** JWS algorithms an access token may be signed with: asymmetric only, so a key from the provider's JWKS can never double as a shared secret. */
export const ACCESS_TOKEN_ALGORITHMS = Object.freeze(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"] as const);

const httpUrl = (what: string) => z.url({ protocol: /^https?$/, error: `must be an http(s) URL (${what})` });
const claimName = z.string().min(1).max(256);
/**
 * Exchanging each caller's access token at the provider's token endpoint
 * for a token of the upstream or origin it calls: see `TokenExchangeConfig`.
 */
const tokenExchangeSchema = z
  .strictObject({
    clientId: z.string().min(1).max(256),
    clientSecretFile: nonEmpty.optional(),
    clientSecretFromEnv: envName.optional(),
    clientAuth: z.enum(["client_secret_basic", "client_secret_post", "private_key_jwt"]).optional(),
    clientKeyFile: nonEmpty.optional(),
    clientKeyId: z.string().min(1).max(256).optional(),
    tokenEndpoint: httpUrl("the provider's token endpoint; found in its metadata when not given").optional(),
    refreshBeforeSeconds: wholeNumber(0, 3600, "seconds").optional(),
    timeoutSeconds: wholeNumber(1, 120, "seconds").optional(),
    origins: z.record(z.string(), exchangeTargetSchema).optional(),
  })
  .superRefine((c, ctx) => {
    const secrets = [c.clientSecretFile, c.clientSecretFromEnv].filter((v) => v !== undefined).length;
    if (c.clientAuth === "private_key_jwt") {
      if (c.clientKeyFile === undefined) ctx.addIssue({ code: "custom", path: ["clientKeyFile"], message: "private_key_jwt signs with the gateway's private key: name its file (PKCS#8 PEM, or a private JWK)" });
      if (secrets > 0) ctx.addIssue({ code: "custom", path: [c.clientSecretFile === undefined ? "clientSecretFromEnv" : "clientSecretFile"], message: "private_key_jwt sends no client secret: leave it out" });
    } else {
      if (secrets !== 1) ctx.addIssue({ code: "custom", message: "name the gateway's client secret at the provider: clientSecretFile or clientSecretFromEnv, exactly one (never the secret itself)" });
      if (c.clientKeyFile !== undefined || c.clientKeyId !== undefined) {
        ctx.addIssue({ code: "custom", path: [c.clientKeyFile === undefined ? "clientKeyId" : "clientKeyFile"], message: 'a client key applies only to clientAuth "private_key_jwt"' });
      }
    }
  });

/**
 * The operator's identity provider, whose access tokens (JWTs) open sessions
 * besides Biscuit tokens: see `OAuthConfig` for each field.
 */
const oauthSchema = z.strictObject({
  issuer: httpUrl("the provider's issuer identifier, as its tokens' iss claim names it"),
  jwksUri: httpUrl("where the provider publishes its signing keys").optional(),
  resource: httpUrl("this gateway's MCP endpoint as clients reach it, such as https://mcp.example.com/mcp").optional(),
  scopes: z.array(scopeToken).optional(),
  algorithms: z.array(z.enum(ACCESS_TOKEN_ALGORITHMS)).min(1).optional(),
  clockToleranceSeconds: wholeNumber(0, 300, "seconds").optional(),
  tokenTypes: z.array(z.string().regex(/^(application\/)?[a-z0-9!#$&^_.+-]+$/i, 'must be a media type such as "at+jwt"')).min(1).optional(),
  claims: z
    .strictObject({
      principal: claimName.optional(),
      roles: claimName.optional(),
      tenants: claimName.optional(),
    })
    .optional(),
  tokenExchange: tokenExchangeSchema.optional(),
});

/** A Host the gateway also answers to, such as a reverse proxy's name. */
const allowedHost = z.string().refine((h) => parseHost(h) !== null, 'must be a host name or IP address, optionally with a port, such as "mcp.example.com" or "127.0.0.1:3333"');
/** An origin whose pages may call the gateway, in the form browsers send it. */
const allowedOrigin = z.string().superRefine((o, ctx) => {
  const problem = originProblem(o);
  if (problem !== undefined) ctx.addIssue({ code: "custom", message: `${problem} (an origin is scheme, host and port only, such as "https://app.example.com")` });
});

/**
 * Each user's own credentials for upstreams and HTTP origins: the vault's
 * key, in a file or an environment variable (never in the database the
 * vault is kept in, the token store's).
 */
const credentialsSchema = z
  .strictObject({
    keyFile: nonEmpty.optional(),
    keyFromEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name").optional(),
  })
  .refine((c) => (c.keyFile === undefined) !== (c.keyFromEnv === undefined), "name the vault key's place: keyFile or keyFromEnv, exactly one");

const configSchema = z
  .strictObject({
    issuer: nonEmpty,
    listen: z
      .strictObject({
        host: nonEmpty.optional(),
        port: z.number().int().min(0).max(65535).optional(),
        backlog: wholeNumber(1, 65_535, "connections").optional(),
        limits: limitsSchema.optional(),
        allowedHosts: z.array(allowedHost).optional(),
        allowedOrigins: z.array(allowedOrigin).optional(),
      })
      .optional(),
    keys: z
      .strictObject({
        /** A key file as `agentcap token keygen` writes it; needed to mint development tokens. */
        file: nonEmpty.optional(),
        /** Create the key file when it is missing (development setups only). */
        createIfMissing: z.boolean().optional(),
        /** Further issuer public keys, by key id, for tokens signed elsewhere or before a rotation. */
        publicKeys: z.record(z.string().regex(/^\d{1,10}$/, "must be a key id in decimal"), nonEmpty).optional(),
      })
      .refine((k) => k.file !== undefined || k.publicKeys !== undefined, "needs file (a key file) or publicKeys (to verify only)"),
    tokenStore: storeSchema,
    audit: auditSchema,
    policy: z.strictObject({
      roles: z.record(nonEmpty, policyGrant),
      principals: z.record(nonEmpty, principalSchema),
    }),
    tools: z
      .strictObject({
        files: z.strictObject({ root: nonEmpty }).optional(),
        http: z.strictObject({ timeoutMs: z.number().int().positive().optional() }).optional(),
        /** `seed`: an SQL file that creates the database when its file does not exist yet. */
        database: z.strictObject({ sqlite: nonEmpty, schema: z.record(nonEmpty, z.unknown()), seed: nonEmpty.optional() }).optional(),
        commands: z.strictObject({ env: z.record(z.string(), z.string()).optional() }).optional(),
        /** The opt-out for the built-in tools above: their handlers run in this process instead of a sandbox (recorded in every event). */
        trusted: z.boolean().optional(),
        modules: z.array(toolModuleSchema).max(64).optional(),
      })
      .optional(),
    upstreams: z.array(upstreamSchema).optional(),
    credentials: credentialsSchema.optional(),
    sessions: sessionsSchema.optional(),
    oauth: oauthSchema.optional(),
    approvals: z
      .strictObject({
        /** Told of every new approval request: a POST of what approvers see, never a capability or a token. */
        webhook: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
        waitSeconds: wholeNumber(1, 86_400, "seconds").optional(),
        /** How long a call over MCP waits for approval before its client is told it is pending (default 0: at once, unless the client answers elicitation). */
        holdSeconds: wholeNumber(0, 3600, "seconds").optional(),
      })
      .optional(),
  })
  .superRefine((config, ctx) => {
    const configured = { files: config.tools?.files, http: config.tools?.http, database: config.tools?.database, exec: config.tools?.commands };
    for (const [i, m] of (config.tools?.modules ?? []).entries()) {
      for (const name of m.endow ?? []) {
        if (configured[name] === undefined) {
          ctx.addIssue({ code: "custom", path: ["tools", "modules", i, "endow"], message: `endows ${name}, which is not configured (tools.${name === "exec" ? "commands" : name})` });
        }
      }
    }
    const limits = httpLimits(config.listen?.limits);
    if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
      ctx.addIssue({
        code: "custom",
        path: ["listen", "limits", "headersTimeoutMs"],
        message: `must not be more than requestTimeoutMs (${limits.requestTimeoutMs}), which bounds the whole request, headers included`,
      });
    }
    for (const [name, p] of Object.entries(config.policy.principals)) {
      for (const [i, role] of (p.roles ?? []).entries()) {
        if (!Object.hasOwn(config.policy.roles, role)) {
          ctx.addIssue({ code: "custom", path: ["policy", "principals", name, "roles", i], message: `names role ${JSON.stringify(role)}, which policy.roles does not define` });
        }
      }
    }
    const names = new Set<string>();
    for (const [i, u] of (config.upstreams ?? []).entries()) {
      if (names.has(u.name)) ctx.addIssue({ code: "custom", path: ["upstreams", i, "name"], message: `another upstream is already named ${u.name}` });
      names.add(u.name);
      if (!("url" in u)) continue;
      if (u.credentials === "per-principal" && config.credentials === undefined) {
        ctx.addIssue({ code: "custom", path: ["upstreams", i, "credentials"], message: "needs the credentials section, which names the vault's key" });
      }
      if (u.credentials === "token-exchange" && config.oauth?.tokenExchange === undefined) {
        ctx.addIssue({ code: "custom", path: ["upstreams", i, "credentials"], message: "needs oauth.tokenExchange, which names the gateway's client at the identity provider" });
      }
      if (u.exchange !== undefined && u.credentials !== "token-exchange") {
        ctx.addIssue({ code: "custom", path: ["upstreams", i, "exchange"], message: 'applies only to an upstream with credentials "token-exchange"' });
      }
    }
    const exchange = config.oauth?.tokenExchange;
    if (config.oauth !== undefined && exchange !== undefined) {
      // The exchange sends the caller's token and the gateway's secret: never in the clear beyond this machine.
      const endpoint = exchange.tokenEndpoint ?? config.oauth.issuer;
      if (!secureEndpoint(endpoint)) {
        ctx.addIssue({
          code: "custom",
          path: ["oauth", exchange.tokenEndpoint === undefined ? "issuer" : "tokenExchange", ...(exchange.tokenEndpoint === undefined ? [] : ["tokenEndpoint"])],
          message: "must be https for a token exchange, which sends each caller's token and the gateway's client secret (http only on a loopback address)",
        });
      }
      for (const origin of Object.keys(exchange.origins ?? {})) {
        const problem = originProblem(origin);
        if (problem !== undefined) ctx.addIssue({ code: "custom", path: ["oauth", "tokenExchange", "origins", origin], message: `${problem} (an origin is scheme, host and port only, such as "https://api.example.com")` });
      }
    }
  });

/** True for an https URL, or an http one on a loopback address (a provider on the same machine). */
function secureEndpoint(url: string): boolean {
  const u = URL.parse(url);
  if (u === null) return true;
  if (u.protocol === "https:") return true;
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

type Parsed = z.output<typeof configSchema>;

/** Where a store lives, with paths absolute and the Postgres URL read. */
export type StoreConfig = { readonly kind: "sqlite"; readonly path: string } | { readonly kind: "postgres"; readonly url: string; readonly schema?: string };

/** Where the audit log's checkpoints are signed and written; paths absolute. */
export interface CheckpointConfig {
  readonly keyFile: string;
  readonly createKeyIfMissing: boolean;
  readonly file: string;
  readonly everyEntries?: number;
  readonly everySeconds?: number;
}

/** Where the audit log's OpenTelemetry stream goes. */
export interface OtlpConfig {
  readonly endpoint: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly maxQueue?: number;
  readonly maxBatch?: number;
}

/** Where the audit log lives; a SQLite log may choose its synchronous mode; either may sign checkpoints and stream to a collector. */
export type AuditConfig =
  | { readonly kind: "sqlite"; readonly path: string; readonly synchronous?: "full" | "normal"; readonly checkpoints?: CheckpointConfig; readonly otlp?: OtlpConfig }
  | { readonly kind: "postgres"; readonly url: string; readonly schema?: string; readonly checkpoints?: CheckpointConfig; readonly otlp?: OtlpConfig };

/** One upstream MCP server, as validated. */
export type UpstreamConfig = Readonly<Parsed["upstreams"] extends (infer U)[] | undefined ? U : never>;

/** Bounds on every request to the HTTP gateway. */
export interface HttpLimits {
  /** Time from a request's first byte to the end of its headers; slower gets 408 and the connection closed. */
  readonly headersTimeoutMs: number;
  /** Time from a request's first byte to the end of its body; slower gets 408 and the connection closed. */
  readonly requestTimeoutMs: number;
  /** Size of a request's headers, bearer token included; larger gets 431. */
  readonly maxHeaderBytes: number;
  /** Size of a POST /mcp body; larger gets 413 before the MCP transport parses it. */
  readonly maxBodyBytes: number;
  /**
   * Time an idle connection is kept open after its last answer (sent to
   * clients as `Keep-Alive: timeout=`). Longer than the clients' own, so a
   * client never sends its next request on a connection the gateway is
   * closing, which fails a POST with no answer.
   */
  readonly keepAliveTimeoutMs: number;
}

/**
 * Bounds on the sessions of the HTTP gateway and on the tool calls of every
 * session, so that no token holder can make the gateway keep unbounded state.
 */
export interface SessionLimits {
  /** A session with no request for this long is closed; its client's next request gets 404 and it initializes again. */
  readonly idleTimeoutMs: number;
  /** Sessions open at once in all; an initialize beyond it gets 503. */
  readonly max: number;
  /** Sessions open at once for one principal; a new one closes that principal's least recently used idle session (429 when none is idle). */
  readonly maxPerPrincipal: number;
  /** Sessions open at once for one token; a new one closes that token's least recently used idle session (429 when none is idle). */
  readonly maxPerToken: number;
  /** Tool calls running at once, across every session; later ones wait their turn. */
  readonly maxConcurrentCalls: number;
  /**
   * Tool calls of one session running (or waiting for a turn of the
   * gateway's) at once; its later ones wait behind them, so one session
   * cannot take every turn of `maxConcurrentCalls` from the others.
   */
  readonly maxCallsPerSession: number;
  /** Tool calls waiting for a turn, of the gateway's and of each session's; one beyond it is refused with LimitExceeded (maxQueuedCalls). */
  readonly maxQueuedCalls: number;
}

/**
 * Access tokens from the operator's identity provider (an OAuth 2.1
 * authorization server). A JWT bearer is verified against the provider's
 * keys, then the gateway's own mint issues the session's capability for the
 * principal its claims name.
 */
export interface OAuthConfig {
  /** The provider's issuer identifier; a token's `iss` must equal it, and the protected resource metadata names it. */
  readonly issuer: string;
  /** Where the provider's JWKS is; found in its metadata (OpenID or RFC 8414) when not given. */
  readonly jwksUri?: string;
  /** This gateway's resource URI (RFC 8707): a token's `aud` must include it. The listen address's /mcp URL when not given. */
  readonly resource?: string;
  /** Scopes every token needs; one lacking any gets 403 insufficient_scope. Listed as scopes_supported. */
  readonly scopes: readonly string[];
  /** The signature algorithms accepted. */
  readonly algorithms: readonly (typeof ACCESS_TOKEN_ALGORITHMS)[number][];
  /** Leeway for `exp` and `nbf`, for clocks that disagree a little. */
  readonly clockToleranceSeconds: number;
  /**
   * The `typ` header values a token must carry (RFC 9068 access tokens say
   * `at+jwt`), without their `application/` prefix and in lower case; null
   * checks none, as many providers send `JWT` for every token they sign.
   */
  readonly tokenTypes: readonly string[] | null;
  /**
   * Which claims say who the caller is: `principal` (default `sub`) names a
   * principal; one listed in `policy.principals` gets exactly its configured
   * tenants and roles. Any other gets the roles its `roles` claim names
   * (only those `policy.roles` defines) and the tenants its `tenants` claim
   * names; without a `roles` claim configured, such a principal gets nothing.
   */
  readonly claims: { readonly principal: string; readonly roles?: string; readonly tenants?: string };
  /** Exchanging callers' access tokens for tokens of the upstreams and origins behind the gateway; without it, none is exchanged. */
  readonly tokenExchange?: TokenExchangeConfig;
}

/** What one token exchange asks for: the target's logical name, its URI, and scopes. */
export interface ExchangeTarget {
  readonly audience?: string;
  readonly resource?: string;
  readonly scopes?: readonly string[];
}

/**
 * The gateway as an OAuth client of the identity provider, exchanging
 * (RFC 8693) the access token a session came in with for a token of the
 * upstream or origin a call goes to, at the moment it is sent.
 */
export interface TokenExchangeConfig {
  /** The gateway's client id at the provider. */
  readonly clientId: string;
  /** How the gateway authenticates at the token endpoint: with a client secret (RFC 6749 §2.3.1), or a JWT signed with its private key (RFC 7523 §2.2). */
  readonly clientAuth: "client_secret_basic" | "client_secret_post" | "private_key_jwt";
  /** For the client secret methods: where the secret is, a file (path absolute) or an environment variable; never in the configuration. */
  readonly clientSecret?: { readonly file: string } | { readonly fromEnv: string };
  /** For private_key_jwt: the private key's file (path absolute), and the key id its assertions name (the provider finds the public key by it). */
  readonly clientKey?: { readonly file: string; readonly keyId?: string };
  /** The provider's token endpoint; found in its metadata when not given. */
  readonly tokenEndpoint?: string;
  /** An exchanged token is exchanged again this long before it expires. */
  readonly refreshBeforeSeconds: number;
  /** How long one exchange (or the metadata look-up) may take. */
  readonly timeoutSeconds: number;
  /** Origins the fetch tool sends an exchanged token to, each with what it is asked for (by default the origin as the resource). */
  readonly origins: Readonly<Record<string, ExchangeTarget>>;
}

/** A validated gateway configuration: every path absolute, every grant checked by the kernel's own parser. */
export interface GatewayConfig {
  readonly issuer: string;
  readonly listen: {
    readonly host: string;
    readonly port: number;
    /** Connections the kernel queues before the gateway accepts them (capped by its own net.core.somaxconn); past it, it drops them and clients send their SYN again. */
    readonly backlog: number;
    readonly limits: HttpLimits;
    /** Host values answered besides the listen address (see http-hosts.ts), such as a reverse proxy's name. */
    readonly allowedHosts: readonly string[];
    /** Origins whose pages may call the gateway besides those of the hosts it answers to. */
    readonly allowedOrigins: readonly string[];
  };
  readonly keys: { readonly file?: string; readonly createIfMissing: boolean; readonly publicKeys: Readonly<Record<string, string>> };
  readonly tokenStore: StoreConfig;
  readonly audit: AuditConfig;
  readonly policy: {
    readonly roles: Readonly<Record<string, Grant>>;
    readonly principals: Readonly<Record<string, { readonly tenants: readonly string[]; readonly roles: readonly string[]; readonly grant?: Grant }>>;
  };
  readonly tools: NonNullable<Parsed["tools"]>;
  readonly upstreams: readonly UpstreamConfig[];
  readonly sessions: SessionLimits;
  /** Access tokens from the operator's identity provider; without it, only Biscuit tokens open sessions. */
  readonly oauth?: OAuthConfig;
  /** Each user's own credentials, in a vault in the token store's database; without it, no credential is attached. */
  readonly credentials?: CredentialsConfig;
  /**
   * Human approval of calls an approval rule matches, kept in the token
   * store's database (shared with `agentcap approvals` and other gateway
   * processes); without it, such calls are refused with ApprovalRequired.
   */
  readonly approvals?: ApprovalsConfig;
}

/**
 * Where the vault's key is (a file, its path absolute, or an environment
 * variable). With it, the fetch tool and `per-principal` upstreams attach
 * the caller's own credential for each origin they send to.
 */
export interface CredentialsConfig {
  readonly key: { readonly file: string } | { readonly fromEnv: string };
}

/** How the gateway asks for approval. */
export interface ApprovalsConfig {
  readonly webhook?: string;
  readonly waitSeconds?: number;
  readonly holdSeconds: number;
}

/**
 * The issues to show for `issue`, with paths from the top. A value that
 * matches no form of a union is described by the form it came closest to
 * (fewest issues), so a bad field of an upstream is named rather than
 * reported as the whole upstream being "Invalid input".
 */
function leafIssues(issue: z.core.$ZodIssue, prefix: readonly PropertyKey[]): { readonly path: readonly PropertyKey[]; readonly message: string }[] {
  const path = [...prefix, ...issue.path];
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    const closest = issue.errors.reduce((a, b) => (b.length < a.length ? b : a));
    if (closest.length > 0) return closest.flatMap((i) => leafIssues(i, path));
  }
  return [{ path, message: issue.message }];
}

/** Turns every zod issue into one line naming its field, so a person can fix them all in one go. */
function describeAll(what: string, error: z.ZodError): string {
  const lines = error.issues.flatMap((i) => leafIssues(i, [])).map((issue) => `  ${issue.path.length > 0 ? issue.path.map(String).join(".") : "(top level)"}: ${issue.message}`);
  return `invalid ${what}:\n${lines.join("\n")}`;
}

function store(s: Parsed["audit"] | Parsed["tokenStore"], dir: string, where: string, env: NodeJS.ProcessEnv): AuditConfig {
  if (s.kind === "sqlite") {
    const synchronous = "synchronous" in s && s.synchronous !== undefined ? { synchronous: s.synchronous } : {};
    return { kind: "sqlite", path: s.path === ":memory:" ? s.path : path.resolve(dir, s.path), ...synchronous };
  }
  const url = s.url ?? (s.urlFromEnv === undefined ? undefined : env[s.urlFromEnv]);
  if (url === undefined || url === "") {
    const source = s.urlFromEnv === undefined ? "set url" : `set the environment variable ${s.urlFromEnv}`;
    throw new InvalidInput(`invalid gateway config:\n  ${where}: a postgres store needs a connection string; ${source}`);
  }
  return { kind: "postgres", url, ...defined({ schema: s.schema }) };
}

function auditStore(s: Parsed["audit"], dir: string, env: NodeJS.ProcessEnv): AuditConfig {
  const o = s.otlp;
  const otlp: OtlpConfig | undefined = o === undefined ? undefined : { endpoint: o.endpoint, ...defined({ headers: o.headers, maxQueue: o.maxQueue, maxBatch: o.maxBatch }) };
  const where: AuditConfig = { ...store(s, dir, "audit", env), ...defined({ otlp }) };
  const c = s.checkpoints;
  if (c === undefined) return where;
  const file = c.file ?? (where.kind === "sqlite" && where.path !== ":memory:" ? `${where.path}.checkpoints` : undefined);
  if (file === undefined) throw new InvalidInput("invalid gateway config:\n  audit.checkpoints.file: name the file checkpoints are written to; only a SQLite file has a default beside it");
  return {
    ...where,
    checkpoints: {
      keyFile: path.resolve(dir, c.keyFile),
      createKeyIfMissing: c.createKeyIfMissing ?? false,
      file: path.resolve(dir, file),
      ...defined({ everyEntries: c.everyEntries, everySeconds: c.everySeconds }),
    },
  };
}

/**
 * `value` with every relative `fs` path in the policy's grants resolved
 * against `dir`, so a configuration can grant its own workspace folder
 * wherever it is checked out. Anything malformed is left for the schema to
 * name.
 */
function resolvePolicyPaths(value: unknown, dir: string): unknown {
  const grantWithPaths = (g: unknown): unknown => {
    if (typeof g !== "object" || g === null || !Array.isArray((g as { fs?: unknown }).fs)) return g;
    const fs = (g as { fs: unknown[] }).fs.map((rule) =>
      typeof rule === "object" && rule !== null && typeof (rule as { path?: unknown }).path === "string" && !(rule as { path: string }).path.startsWith("/")
        ? { ...rule, path: path.resolve(dir, (rule as { path: string }).path) }
        : rule,
    );
    return { ...g, fs };
  };
  const map = (record: unknown, f: (v: unknown) => unknown): unknown =>
    typeof record === "object" && record !== null && !Array.isArray(record) ? Object.fromEntries(Object.entries(record).map(([k, v]) => [k, f(v)])) : record;
  if (typeof value !== "object" || value === null) return value;
  const policy = (value as { policy?: unknown }).policy;
  if (typeof policy !== "object" || policy === null) return value;
  const { roles, principals } = policy as { roles?: unknown; principals?: unknown };
  return {
    ...value,
    policy: {
      ...policy,
      ...(roles === undefined ? {} : { roles: map(roles, grantWithPaths) }),
      ...(principals === undefined
        ? {}
        : { principals: map(principals, (p) => (typeof p === "object" && p !== null && "grant" in p ? { ...p, grant: grantWithPaths(p.grant) } : p)) }),
    },
  };
}

/**
 * Validates `value` as a gateway configuration. `dir` is the folder relative
 * paths resolve against. Throws InvalidInput listing every bad field.
 */
export function parseGatewayConfig(value: unknown, dir: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const parsed = configSchema.safeParse(resolvePolicyPaths(value, dir));
  if (!parsed.success) throw new InvalidInput(describeAll("gateway config", parsed.error));
  const c = parsed.data;
  const tools = c.tools ?? {};
  return {
    issuer: c.issuer,
    listen: {
      host: c.listen?.host ?? "127.0.0.1",
      port: c.listen?.port ?? 3333,
      backlog: c.listen?.backlog ?? DEFAULT_BACKLOG,
      limits: httpLimits(c.listen?.limits),
      allowedHosts: c.listen?.allowedHosts ?? [],
      allowedOrigins: c.listen?.allowedOrigins ?? [],
    },
    keys: {
      ...(c.keys.file === undefined ? {} : { file: path.resolve(dir, c.keys.file) }),
      createIfMissing: c.keys.createIfMissing ?? false,
      publicKeys: c.keys.publicKeys ?? {},
    },
    tokenStore: store(c.tokenStore, dir, "tokenStore", env),
    audit: auditStore(c.audit, dir, env),
    policy: {
      roles: Object.fromEntries(Object.entries(c.policy.roles).map(([k, g]) => [k, parseGrant(g)])),
      principals: Object.fromEntries(
        Object.entries(c.policy.principals).map(([k, p]) => [k, { tenants: p.tenants ?? [], roles: p.roles ?? [], ...(p.grant === undefined ? {} : { grant: parseGrant(p.grant) }) }]),
      ),
    },
    tools: {
      ...(tools.files === undefined ? {} : { files: { root: path.resolve(dir, tools.files.root) } }),
      ...defined({ http: tools.http }),
      ...(tools.database === undefined
        ? {}
        : { database: { ...tools.database, sqlite: path.resolve(dir, tools.database.sqlite), ...(tools.database.seed === undefined ? {} : { seed: path.resolve(dir, tools.database.seed) }) } }),
      ...defined({ commands: tools.commands, trusted: tools.trusted }),
      ...(tools.modules === undefined ? {} : { modules: tools.modules.map((m) => ({ ...m, path: path.resolve(dir, m.path) })) }),
    },
    upstreams: (c.upstreams ?? []).map((u) => ({ ...u, ...(u.root === undefined ? {} : { root: path.resolve(dir, u.root) }) })),
    sessions: { ...DEFAULT_SESSION_LIMITS, ...defined(c.sessions ?? {}) },
    ...(c.credentials === undefined
      ? {}
      : { credentials: { key: c.credentials.keyFile === undefined ? { fromEnv: c.credentials.keyFromEnv as string } : { file: path.resolve(dir, c.credentials.keyFile) } } }),
    ...(c.approvals === undefined ? {} : { approvals: { holdSeconds: c.approvals.holdSeconds ?? 0, ...defined({ webhook: c.approvals.webhook, waitSeconds: c.approvals.waitSeconds }) } }),
    ...(c.oauth === undefined
      ? {}
      : {
          oauth: {
            ...defined({ issuer: c.oauth.issuer, jwksUri: c.oauth.jwksUri, resource: c.oauth.resource }),
            issuer: c.oauth.issuer,
            scopes: c.oauth.scopes ?? [],
            algorithms: c.oauth.algorithms ?? [...ACCESS_TOKEN_ALGORITHMS],
            clockToleranceSeconds: c.oauth.clockToleranceSeconds ?? 0,
            tokenTypes: c.oauth.tokenTypes === undefined ? null : c.oauth.tokenTypes.map(mediaSubtype),
            claims: { principal: c.oauth.claims?.principal ?? "sub", ...defined({ roles: c.oauth.claims?.roles, tenants: c.oauth.claims?.tenants }) },
            ...(c.oauth.tokenExchange === undefined ? {} : { tokenExchange: tokenExchange(c.oauth.tokenExchange, dir) }),
          },
        }),
  };
}

/** The token exchange section with defaults, the secret file's path absolute and each origin in its canonical form. */
function tokenExchange(t: NonNullable<NonNullable<Parsed["oauth"]>["tokenExchange"]>, dir: string): TokenExchangeConfig {
  return {
    clientId: t.clientId,
    clientAuth: t.clientAuth ?? "client_secret_basic",
    ...(t.clientKeyFile !== undefined
      ? { clientKey: { file: path.resolve(dir, t.clientKeyFile), ...defined({ keyId: t.clientKeyId }) } }
      : { clientSecret: t.clientSecretFile === undefined ? { fromEnv: t.clientSecretFromEnv as string } : { file: path.resolve(dir, t.clientSecretFile) } }),
    ...defined({ tokenEndpoint: t.tokenEndpoint }),
    refreshBeforeSeconds: t.refreshBeforeSeconds ?? 30,
    timeoutSeconds: t.timeoutSeconds ?? 10,
    origins: Object.fromEntries(Object.entries(t.origins ?? {}).map(([o, target]) => [new URL(o).origin, exchangeTargetOf(target, new URL(o).origin)])),
  };
}

/** What an exchange asks for, as configured; naming neither audience nor resource, it asks for `defaultResource` as the resource. */
export function exchangeTargetOf(t: { readonly audience?: string | undefined; readonly resource?: string | undefined; readonly scopes?: readonly string[] | undefined } | undefined, defaultResource: string): ExchangeTarget {
  if (t === undefined) return { resource: defaultResource };
  const named = t.audience !== undefined || t.resource !== undefined;
  return { ...defined({ audience: t.audience, resource: named ? t.resource : defaultResource, scopes: t.scopes }) };
}

/** The largest JSON configuration file read: far beyond any real one, and bounded, since the path may name a device that never ends. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/**
 * Loads and validates the configuration at `file`: JSON (at most
 * MAX_CONFIG_BYTES), or a `.ts`/`.js` module whose default export is the
 * configuration object. Throws InvalidInput when the file cannot be read
 * or parsed, or a field is bad.
 */
export async function loadGatewayConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<GatewayConfig> {
  const absolute = path.resolve(file);
  let value: unknown;
  if (/\.(c|m)?[jt]s$/.test(absolute)) {
    try {
      value = ((await import(pathToFileURL(absolute).href)) as { default?: unknown }).default;
    } catch (e) {
      throw new InvalidInput(`cannot load gateway config module ${absolute}: ${e instanceof Error ? e.message : String(e)}`);
    }
  } else {
    const text = readBoundedText(absolute, MAX_CONFIG_BYTES, "gateway config");
    try {
      value = JSON.parse(text) as unknown;
    } catch (e) {
      throw new InvalidInput(`gateway config ${absolute} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return parseGatewayConfig(value, path.dirname(absolute), env);
}
