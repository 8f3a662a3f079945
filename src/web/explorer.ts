/**
 * The audit explorer over HTTP, mounted by the gateway (and by `agentcap
 * audit explore`) under /explore: the page, and the JSON API it reads.
 *
 * Every API request carries a bearer token in `Authorization`, never in the
 * URL; its capability must have an `audit: ["read"]` grant, and a reader
 * confined to tenants sees only their events (another tenant's look exactly
 * like events that do not exist). Revoking is a POST of JSON with the bearer
 * header, which a cross-site page cannot send without a preflight that is
 * never granted, and requests a browser marks as cross-site are refused.
 * Every response forbids framing and sniffing, and the page runs under a
 * Content-Security-Policy that allows only its own files.
 */
import { existsSync, readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AUDIT_ACTIONS, type AuditQuery, type AuditRecord, type AuditStore } from "../audit/index.js";
import { AgentcapError, AuditFailure, check, InvalidInput, isDenial, StoreUnavailable, systemClock, type Capability, type Clock, type Decision } from "../kernel/index.js";
import type { RevocationEntry, RevocationReport, RevocationTarget } from "../token/index.js";
import { authorizeRead, readScope, type ReadScope } from "./access.js";
import {
  activityChart,
  capabilityDetail,
  CHART_DIMENSIONS,
  delegationTree,
  loggedRevocations,
  MAX_CHART_BUCKETS,
  RevocationIndex,
  type ChartDimension,
  type IntegrityView,
  type RevocationView,
  type SessionView,
  type TimelinePage,
} from "./views.js";

/** Where the explorer answers. */
export const EXPLORE_PATH = "/explore";

/** What the explorer reads and acts through. */
export interface ExplorerOptions {
  readonly audit: AuditStore;
  /** The capability of a bearer token; throws an AgentcapError (InvalidToken, Revoked, Expired) for one that is refused. */
  readonly authenticate: (token: string) => Promise<Capability>;
  /** Records a revocation asked for by the holder of `token`, which must grant it. Without it the page cannot revoke. */
  readonly revoke?: (token: string, request: { readonly target: RevocationTarget; readonly reason?: string }) => Promise<RevocationReport>;
  /** The revocation list, for each capability's status; without it, the revocations the log recorded. */
  readonly revocations?: () => Promise<readonly RevocationEntry[]>;
  /** The log's signed checkpoints, for showing the latest one. */
  readonly checkpoints?: () => Promise<readonly string[]>;
  /** The built page (index.html and assets/); the one built into the package by default. */
  readonly pageDir?: string;
  readonly clock?: Clock;
  /** How often live updates look for new events, in ms (default 1000). */
  readonly pollMs?: number;
  /** One line for the operator: refused tokens, failed requests. */
  readonly log?: (line: string) => void;
}

/** A mounted explorer. */
export interface Explorer {
  /** Answers one request whose path is EXPLORE_PATH or below it. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
  /** Ends the live update streams. */
  close(): void;
}

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const COMMON_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
};

const TYPES: Readonly<Record<string, string>> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".woff2": "font/woff2",
  ".json": "application/json",
};

const NO_READ_GRANT = 'this token\'s capability does not grant reading the audit log (audit: ["read"])';
const TOKEN_REFUSED = "the bearer token was refused (malformed, not signed by a known key, revoked or expired)";
/** While the token store cannot be read: not a refusal of the token, so 503 and Retry-After. */
const STORE_DOWN = "the token could not be checked for revocation because the token store is unavailable; retry shortly";
const STORE_RETRY_AFTER_S = 2;
const MAX_BODY = 16 * 1024;
const STREAM_BATCH = 500;
/** An event sent while still open is sent again once its outcome is logged, for this long at most. */
const OPEN_WATCH_MS = 60_000;

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...COMMON_HEADERS, "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers }).end(JSON.stringify(body));
}

function bearer(req: IncomingMessage): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
  return m === null ? null : (m[1] as string);
}

/** An explorer request the client got wrong: answered with its status and message. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

const STRING_FILTERS = {
  principal: "principal",
  requestId: "requestId",
  capability: "descendantsOf",
  capabilityHash: "capabilityHash",
  tool: "tool",
  resourcePrefix: "resourcePrefix",
  tenant: "tenant",
  sessionId: "sessionId",
  taskId: "taskId",
} as const;

function time(name: string, value: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isSafeInteger(ms)) throw new Refusal(400, "invalid_request", `${name} must be milliseconds since the epoch or an ISO 8601 time`);
  return ms;
}

function whole(name: string, value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new Refusal(400, "invalid_request", `${name} must be a whole number`);
  return Number(value);
}

/** The audit query a timeline URL asks for: the query primitive's filters, each at most once. */
export function timelineQuery(params: URLSearchParams): AuditQuery {
  const q: Record<string, unknown> = {};
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key);
    const value = values[0] ?? "";
    if (values.length > 1) throw new Refusal(400, "invalid_request", `${key} is given more than once`);
    if (Object.hasOwn(STRING_FILTERS, key)) q[STRING_FILTERS[key as keyof typeof STRING_FILTERS]] = value;
    else if (key === "action") {
      if (!(AUDIT_ACTIONS as readonly string[]).includes(value)) throw new Refusal(400, "invalid_request", `action must be one of ${AUDIT_ACTIONS.join(", ")}`);
      q.action = value;
    } else if (key === "decision") {
      if (value !== "allowed" && value !== "denied") throw new Refusal(400, "invalid_request", "decision must be allowed or denied");
      q.decision = value;
    } else if (key === "order") {
      if (value !== "asc" && value !== "desc") throw new Refusal(400, "invalid_request", "order must be asc or desc");
      q.order = value;
    } else if (key === "since" || key === "until") q[key] = time(key, value);
    else if (key === "limit" || key === "after") q[key] = whole(key, value);
    else throw new Refusal(400, "invalid_request", `unknown filter ${JSON.stringify(key)}`);
  }
  return q;
}

/** Why a capability reads nothing: its token is dead (401, as any refused token), or its grant has no audit domain (403). */
function noRead(denied: Decision): Refusal {
  if (!denied.allowed && (denied.code === "ERR_REVOKED" || denied.code === "ERR_EXPIRED")) return new Refusal(401, "invalid_token", TOKEN_REFUSED);
  if (!denied.allowed && denied.code === "ERR_STORE_UNAVAILABLE") return new Refusal(503, "store_unavailable", STORE_DOWN);
  return new Refusal(403, "forbidden", NO_READ_GRANT);
}

/** The tenant a reader reads as: the one asked (which its scope must allow), or for a reader confined to one tenant, that one. */
function tenantOf(scope: ReadScope, asked: string | undefined): string | undefined {
  if (scope.all) return asked;
  if (asked === undefined) {
    if (scope.tenants.length === 1) return scope.tenants[0];
    throw new Refusal(403, "forbidden", `this token reads only the audit events of tenants ${scope.tenants.join(", ")}; name one (tenant=…)`);
  }
  if (!scope.tenants.includes(asked)) throw new Refusal(403, "forbidden", `this token does not grant reading the audit events of tenant ${JSON.stringify(asked)}`);
  return asked;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Refusal(413, "too_large", `the request body is larger than ${String(MAX_BODY)} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    throw new Refusal(400, "invalid_request", "the request body is not JSON");
  }
}

/** The revocation the page asks for: a capability (and its subtree), a session or a principal, and why. */
function revocationAsked(body: unknown): { readonly target: RevocationTarget; readonly reason?: string } {
  const usage = 'the body must be { "target": { "capabilityId" | "session" | "principal": "…" }, "reason": "…" }';
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new Refusal(400, "invalid_request", usage);
  const b = body as Record<string, unknown>;
  if (Object.keys(b).some((k) => k !== "target" && k !== "reason")) throw new Refusal(400, "invalid_request", usage);
  const target = b.target;
  if (typeof target !== "object" || target === null || Array.isArray(target)) throw new Refusal(400, "invalid_request", usage);
  const keys = Object.keys(target);
  const key = keys[0];
  const value = (target as Record<string, unknown>)[key ?? ""];
  if (keys.length !== 1 || (key !== "capabilityId" && key !== "session" && key !== "principal") || typeof value !== "string") throw new Refusal(400, "invalid_request", usage);
  if (b.reason !== undefined && typeof b.reason !== "string") throw new Refusal(400, "invalid_request", "reason must be a string");
  return { target: { [key]: value } as unknown as RevocationTarget, ...(b.reason === undefined ? {} : { reason: b.reason }) };
}

/**
 * The page built into the package, beside this module (dist/web/page); when
 * agentcap runs from its source (tests, examples), the repository's build.
 */
function builtPage(): string {
  const beside = fileURLToPath(new URL("./page/", import.meta.url));
  return existsSync(beside) ? beside : fileURLToPath(new URL("../../dist/web/page/", import.meta.url));
}

/** Creates the explorer over `options.audit`. */
export function createExplorer(options: ExplorerOptions): Explorer {
  const clock = options.clock ?? systemClock;
  const pollMs = options.pollMs ?? 1000;
  const pageDir = options.pageDir ?? builtPage();
  const log = (line: string) => {
    options.log?.(line.replace(/\p{Cc}+/gu, " "));
  };
  const streams = new Set<() => void>();

  /** The reader behind the request's bearer token, and the tenant it reads as; one read is charged to it. */
  const reader = async (req: IncomingMessage, askedTenant: string | undefined): Promise<{ cap: Capability; token: string; scope: ReadScope; tenant: string | undefined }> => {
    const { token, cap } = await holder(req);
    const r = readScope(cap);
    if (r.scope === null) throw noRead(r.denied);
    const tenant = tenantOf(r.scope, askedTenant);
    const decision = authorizeRead(cap, tenant);
    if (!decision.allowed) throw new Refusal(403, "forbidden", "this token's capability does not grant this read of the audit log");
    return { cap, token, scope: r.scope, tenant };
  };

  const holder = async (req: IncomingMessage): Promise<{ token: string; cap: Capability }> => {
    const token = bearer(req);
    if (token === null) throw new Refusal(401, "unauthorized", "the explorer's API needs a bearer token with an audit read grant in the Authorization header");
    try {
      return { token, cap: await options.authenticate(token) };
    } catch (e) {
      if (!(e instanceof AgentcapError)) throw e;
      log(`explorer: token refused for ${req.socket.remoteAddress ?? "?"}: ${e.code}: ${e.message}`);
      if (e instanceof StoreUnavailable) throw new Refusal(503, "store_unavailable", STORE_DOWN);
      throw new Refusal(401, "invalid_token", TOKEN_REFUSED);
    }
  };

  const revocations = async (): Promise<RevocationIndex> => new RevocationIndex(options.revocations === undefined ? await loggedRevocations(options.audit) : await options.revocations());

  const latestCheckpoint = async (): Promise<{ readonly size: number; readonly note: string } | null> => {
    const notes = options.checkpoints === undefined ? [] : await options.checkpoints();
    let best: { size: number; note: string } | null = null;
    for (const note of notes) {
      const size = Number(note.split("\n")[1]);
      if (Number.isSafeInteger(size) && (best === null || size > best.size)) best = { size, note };
    }
    return best;
  };

  const api = async (req: IncomingMessage, res: ServerResponse, route: string, params: URLSearchParams): Promise<void> => {
    const tenantParam = params.get("tenant") ?? undefined;
    if (route === "session" && req.method === "GET") {
      const { cap } = await holder(req);
      const r = readScope(cap);
      if (r.scope === null) throw noRead(r.denied);
      json(res, 200, { principal: cap.mint.principal, scope: r.scope, canRevoke: options.revoke !== undefined } satisfies SessionView);
      return;
    }
    if (route === "events" && req.method === "GET") {
      const query = timelineQuery(params);
      const { tenant } = await reader(req, tenantParam);
      const limit = query.limit ?? 100;
      const events = await options.audit.query({ ...query, ...(tenant === undefined ? {} : { tenant }), limit });
      json(res, 200, { events, next: events.length === limit ? (events.at(-1)?.seq ?? null) : null } satisfies TimelinePage);
      return;
    }
    if (route === "chart" && req.method === "GET") {
      const rest = new URLSearchParams(params);
      const by = rest.get("by") ?? "principal";
      const buckets = rest.get("buckets") ?? "24";
      rest.delete("by");
      rest.delete("buckets");
      if (!(CHART_DIMENSIONS as readonly string[]).includes(by)) throw new Refusal(400, "invalid_request", `by must be one of ${CHART_DIMENSIONS.join(", ")}`);
      const n = whole("buckets", buckets);
      if (n < 1 || n > MAX_CHART_BUCKETS) throw new Refusal(400, "invalid_request", `buckets must be from 1 to ${String(MAX_CHART_BUCKETS)}`);
      const query = timelineQuery(rest);
      if (query.order !== undefined || query.limit !== undefined || query.after !== undefined) throw new Refusal(400, "invalid_request", "a chart counts every matching event; leave out order, limit and after");
      const { tenant } = await reader(req, tenantParam);
      json(res, 200, await activityChart(options.audit, { ...query, ...(tenant === undefined ? {} : { tenant }) }, by as ChartDimension, n));
      return;
    }
    if (route === "tree" && req.method === "GET") {
      const root = params.get("root");
      if (root === null || root === "") throw new Refusal(400, "invalid_request", "tree needs root=<capability id>");
      const { tenant } = await reader(req, tenantParam);
      const tree = await delegationTree(options.audit, root, tenant, await revocations(), clock.now());
      if (tree === null) throw new Refusal(404, "not_found", "no event you may read was made under this capability");
      json(res, 200, tree);
      return;
    }
    if (route === "capability" && req.method === "GET") {
      const id = params.get("id");
      if (id === null || id === "") throw new Refusal(400, "invalid_request", "capability needs id=<capability id>");
      const { tenant } = await reader(req, tenantParam);
      const detail = await capabilityDetail(options.audit, id, tenant, await revocations(), clock.now());
      if (detail === null) throw new Refusal(404, "not_found", "no event you may read was made under this capability");
      json(res, 200, detail);
      return;
    }
    if (route === "integrity" && req.method === "GET") {
      const { scope } = await reader(req, tenantParam);
      if (!scope.all) throw new Refusal(403, "forbidden", "the log's integrity covers every tenant's events; it needs an audit read grant not confined to tenants");
      const report = await options.audit.verify();
      json(res, 200, {
        ok: report.ok,
        events: report.events,
        tree: report.tree,
        checkpoints: report.checkpoints,
        pruned: report.pruned,
        latestCheckpoint: await latestCheckpoint(),
        openIntents: report.openIntents,
        openIntentCount: report.openIntentCount,
        problems: report.problems.slice(0, 20),
        complete: report.complete,
      } satisfies IntegrityView);
      return;
    }
    if (route === "stream" && req.method === "GET") {
      await stream(req, res, params);
      return;
    }
    if (route === "revoke" && req.method === "POST") {
      await revoke(req, res);
      return;
    }
    throw new Refusal(404, "not_found", "no such explorer API");
  };

  const revoke = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) throw new Refusal(415, "unsupported_media_type", "a revocation is a JSON body (Content-Type: application/json)");
    const { token } = await holder(req);
    const asked = revocationAsked(await readBody(req));
    if (options.revoke === undefined) throw new Refusal(501, "not_available", "this explorer was opened without a token store; it cannot revoke");
    try {
      const report = await options.revoke(token, asked);
      json(res, 200, { revoked: true, kind: report.kind, id: report.id, reason: report.reason, reached: report.reached } satisfies RevocationView);
    } catch (e) {
      if (e instanceof StoreUnavailable) throw new Refusal(503, "store_unavailable", STORE_DOWN);
      if (isDenial(e)) throw new Refusal(403, "forbidden", "this token's capability does not grant this revocation");
      if (e instanceof InvalidInput) throw new Refusal(400, "invalid_request", e.message);
      throw e;
    }
  };

  /** Live updates: server-sent events of the timeline's new entries (and of open ones once their outcome is logged), until the reader's capability dies. */
  const stream = async (req: IncomingMessage, res: ServerResponse, params: URLSearchParams): Promise<void> => {
    const query = timelineQuery(params);
    if (query.order !== undefined || query.limit !== undefined) throw new Refusal(400, "invalid_request", "live updates come oldest first from after=<seq>; leave out order and limit");
    const { cap, tenant } = await reader(req, params.get("tenant") ?? undefined);
    let last = query.after ?? (await options.audit.head())?.seq ?? 0;
    const open = new Map<number, number>();
    res.writeHead(200, { ...COMMON_HEADERS, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive" });
    res.write(": agentcap audit explorer\n\n");
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      streams.delete(end);
      res.end();
    };
    streams.add(end);
    req.on("close", end);
    const readRequest = tenant === undefined ? { action: "audit.read" as const } : { action: "audit.read" as const, tenant };
    const tick = async () => {
      if (!check(cap, readRequest).allowed) {
        res.write("event: end\ndata: {\"reason\":\"this token can no longer read the audit log\"}\n\n");
        end();
        return;
      }
      const now = clock.now();
      for (const [seq, sentAt] of open) if (now - sentAt > OPEN_WATCH_MS) open.delete(seq);
      const from = Math.min(last, ...[...open.keys()].map((s) => s - 1));
      const batch: AuditRecord[] = await options.audit.query({ ...query, ...(tenant === undefined ? {} : { tenant }), after: from, limit: STREAM_BATCH, order: "asc" });
      const fresh = batch.filter((r) => r.seq > last || (open.has(r.seq) && r.event.outcome !== null));
      for (const r of fresh) {
        if (r.event.outcome === null) open.set(r.seq, open.get(r.seq) ?? now);
        else open.delete(r.seq);
      }
      last = Math.max(last, ...batch.map((r) => r.seq));
      if (fresh.length > 0 && !ended) res.write(`event: events\ndata: ${JSON.stringify({ events: fresh })}\n\n`);
    };
    const loop = () => {
      timer = setTimeout(() => {
        tick().then(
          () => {
            if (!ended) loop();
          },
          (e: unknown) => {
            log(`explorer: live updates stopped: ${e instanceof Error ? e.message : String(e)}`);
            end();
          },
        );
      }, pollMs);
    };
    loop();
    await new Promise<void>((resolve) => res.once("close", resolve));
  };

  let index: string | null = null;
  const page = (res: ServerResponse, rest: string): void => {
    const headers = { ...COMMON_HEADERS, "content-security-policy": CSP };
    if (rest === "" || rest === "/") {
      const file = path.join(pageDir, "index.html");
      if (index === null) {
        if (!existsSync(file)) {
          json(res, 503, { error: "not_built", message: "the explorer page is not built; run npm run build" });
          return;
        }
        index = readFileSync(file, "utf8");
      }
      res.writeHead(200, { ...headers, "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).end(index);
      return;
    }
    const m = /^\/assets\/([A-Za-z0-9_-][A-Za-z0-9._-]*)$/.exec(rest);
    const type = m === null ? undefined : TYPES[path.extname(m[1] as string)];
    const file = m === null ? "" : path.join(pageDir, "assets", m[1] as string);
    if (type === undefined || !existsSync(file)) {
      json(res, 404, { error: "not_found" });
      return;
    }
    res.writeHead(200, { ...headers, "content-type": type, "cache-control": "public, max-age=31536000, immutable" }).end(readFileSync(file));
  };

  return {
    handle: async (req, res, url) => {
      const rest = url.pathname.slice(EXPLORE_PATH.length);
      try {
        // A browser says when a request comes from another site; nothing of the explorer answers those but the page itself.
        const site = req.headers["sec-fetch-site"];
        if (rest.startsWith("/api/") && site !== undefined && site !== "same-origin" && site !== "none") throw new Refusal(403, "forbidden", "cross-site requests are refused");
        if (rest === "") {
          res.writeHead(308, { ...COMMON_HEADERS, location: `${EXPLORE_PATH}/` }).end();
        } else if (rest.startsWith("/api/")) {
          await api(req, res, rest.slice("/api/".length), url.searchParams);
        } else if (req.method === "GET" || req.method === "HEAD") {
          page(res, rest);
        } else {
          json(res, 405, { error: "method_not_allowed" });
        }
      } catch (e) {
        if (res.headersSent) {
          res.end();
          return;
        }
        if (e instanceof Refusal) {
          const headers =
            e.status === 401
              ? { "www-authenticate": `Bearer realm="agentcap"${e.error === "invalid_token" ? ', error="invalid_token"' : ""}` }
              : e.status === 503
                ? { "retry-after": String(STORE_RETRY_AFTER_S) }
                : {};
          json(res, e.status, { error: e.error, message: e.message }, headers);
        } else if (e instanceof InvalidInput) {
          json(res, 400, { error: "invalid_request", message: e.message });
        } else if (e instanceof AuditFailure) {
          log(`explorer: ${e.message}`);
          json(res, 503, { error: "audit_unavailable", message: "the audit log could not be read" });
        } else {
          throw e;
        }
      }
    },
    close: () => {
      for (const end of [...streams]) end();
    },
  };
}
