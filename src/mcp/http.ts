/**
 * The gateway over Streamable HTTP. Every request carries a bearer token in
 * `Authorization`: a Biscuit token, or (with `oauth` configured) an access
 * token of the operator's identity provider (see oauth.ts). A missing or bad
 * one gets 401 with `WWW-Authenticate: Bearer …` (and `error="invalid_token"`
 * when one was given), pointing at the protected resource metadata (RFC
 * 9728, served at both of its locations) as the MCP authorization spec asks;
 * a valid one lacking a required scope gets 403 `insufficient_scope`. Why a
 * token was refused goes to the server's log; the client learns only the
 * kind of refusal (see token-refusal.ts). While the token store cannot be
 * read, so whether a token was revoked is unknown, its requests get 503
 * with `Retry-After` (ERR_STORE_UNAVAILABLE) and its session stays open. A request whose Host or Origin the
 * gateway does not answer to gets 403 before anything else (see
 * http-hosts.ts). A session is bound at `initialize` to the capability of
 * the token that opened it, and later requests of the session must present
 * that same token. Sessions are bounded (see session-table.ts), and so are
 * the tool calls running at once (see call-limit.ts).
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { AgentcapError, CapabilityDenied, denialError, expiresAt, InsufficientScope, InvalidInput, isDenial, StoreUnavailable, type Capability } from "../kernel/index.js";
import { caretaker, deadDenial } from "../kernel/internal.js";
import type { RevocationTarget } from "../token/index.js";
import { EXPLORE_PATH, listenOn } from "../web/index.js";
import { callLimiter, chainLimiters } from "./call-limit.js";
import { followServer, requestIds, RunningRequests } from "./running-requests.js";
import { gatewayExplorer } from "./explorer.js";
import type { Gateway } from "./gateway.js";
import { readJsonBody } from "./http-body.js";
import { requestSources, type RequestSources } from "./http-hosts.js";
import { looksLikeJwt } from "./oauth.js";
import { StreamableHTTPServerTransport } from "./sdk.js";
import { sessionServer } from "./session.js";
import { sessionTable } from "./session-table.js";
import { tokenRefusal } from "./token-refusal.js";

/** The path MCP clients connect to. */
export const MCP_PATH = "/mcp";
/**
 * Where revocations are asked for (POST, with a token as bearer). With no
 * body, the bearer token itself: giving up authority needs no other right.
 * With a JSON body `{ "target": { "principal": "alice" }, "reason": "…" }`
 * (or a session, tenant, role, capabilityId, revocationId or keyId target),
 * only if the bearer's capability has a revoke grant for that target.
 */
export const REVOKE_PATH = "/revoke";
const METADATA_PATH = "/.well-known/oauth-protected-resource";

/** A listening HTTP gateway. */
export interface HttpGateway {
  /** The MCP endpoint, such as http://127.0.0.1:3333/mcp. */
  readonly url: string;
  /** How many sessions are open now: never more than the configuration's `sessions.max`. */
  openSessions(): number;
  /** Stops accepting connections, closes every session, and waits for the server to stop. */
  close(): Promise<void>;
}

/** What the HTTP gateway needs besides its address. */
export interface HttpGatewayOptions {
  /** Takes one line (no newline) for the operator: refused tokens with their reasons, failed requests. Standard error by default. */
  readonly log?: (line: string) => void;
}

interface Session {
  readonly token: string;
  /** The token's capability under this session's caretaker link (labelled with the session id), so `{ session }` revokes it. */
  readonly capability: Capability;
  readonly transport: StreamableHTTPServerTransport;
  /** Stops watching the token store for revocations of the session, and the gateway's tools for changes; set once they are watched. */
  unwatch: () => void;
  /** Requests of the session being answered now (not its event stream): their answers are written before the transport closes. */
  answering: number;
  /** Open; closing once it has left the table (the transport closes when the last answer is written); then closed. */
  state: "open" | "closing" | "closed";
  /** While closing: the timer that closes the transport anyway after CLOSING_GRACE_MS (cleared once closed, so it holds nothing). */
  grace: NodeJS.Timeout | null;
  /** The ids of its requests being answered: another request with one of them is refused. */
  readonly running: RunningRequests;
}

/** What Retry-After says (seconds) when the token store cannot be read: stores try to reconnect several times a second. */
const STORE_RETRY_AFTER_S = 2;

/** How long a closed session's requests in progress may still take to be answered before its transport closes anyway. */
const CLOSING_GRACE_MS = 30_000;

function bearer(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (header === undefined) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m === null ? "" : (m[1] as string);
}

function quoted(text: string): string {
  return `"${text.replace(/[\\"]/g, "\\$&").replace(/[\r\n]/g, " ")}"`;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
}

/** The revocation a /revoke body asks for: none (the bearer token itself), a target and reason, or what is wrong with it. */
function revokeBody(value: unknown): { readonly target?: RevocationTarget; readonly reason?: string } | string {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) return 'the body must be a JSON object such as { "target": { "principal": "alice" }, "reason": "left" }';
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) if (key !== "target" && key !== "reason") return `unknown field ${JSON.stringify(key)}; a revocation has a target and a reason`;
  if (v.reason !== undefined && typeof v.reason !== "string") return "reason must be a string";
  if (v.target !== undefined && (typeof v.target !== "object" || v.target === null)) return "target must be an object naming one of principal, session, tenant, role, capabilityId, revocationId, keyId";
  return { ...(v.target === undefined ? {} : { target: v.target as RevocationTarget }), ...(v.reason === undefined ? {} : { reason: v.reason }) };
}

/**
 * Serves `gateway` on `host:port` (port 0 picks a free one). Resolves once
 * listening; rejects with InvalidInput when the port is in use or the
 * address cannot be listened on. Only the gateway's own routes answer: /mcp, /revoke and the
 * protected resource metadata. Every request is bounded by the
 * configuration's `listen.limits`: slow headers or bodies get 408, large
 * headers 431, a POST /mcp body over the limit 413.
 */
export async function listenHttp(gateway: Gateway, listen: { readonly host: string; readonly port: number }, options: HttpGatewayOptions = {}): Promise<HttpGateway> {
  // A closed session's id is unknown from then on; its client's next request gets 404, or 401 when its token was refused.
  /*
   * A session closed while a call of it is in progress (revoked, or the token
   * store lost, mid-call) still answers that call: the call meets the
   * revocation at its next check and says so. Closing the transport at once
   * would drop the answer, and the client would wait for it until its own
   * timeout.
   */
  const closeTransport = (session: Session) => {
    if (session.state === "closed") return;
    session.state = "closed";
    if (session.grace !== null) clearTimeout(session.grace);
    session.grace = null;
    void session.transport.close();
  };
  const sessions = sessionTable<Session>(gateway.config.sessions, (_id, session) => {
    session.unwatch();
    session.state = "closing";
    if (session.answering === 0) closeTransport(session);
    else {
      session.grace = setTimeout(() => { closeTransport(session); }, CLOSING_GRACE_MS);
      session.grace.unref();
    }
  });
  /** Counts `res` as an answer of `session` in progress until it is written, or its connection ends. */
  const answering = (session: Session, res: ServerResponse) => {
    session.answering += 1;
    res.once("close", () => {
      session.answering -= 1;
      if (session.state === "closing" && session.answering === 0) closeTransport(session);
    });
  };
  const calls = callLimiter(gateway.config.sessions.maxConcurrentCalls, gateway.config.sessions.maxQueuedCalls);
  const limits = gateway.config.listen.limits;
  // Known once listening, before any request can arrive.
  let origin = "";
  let originHost = "";
  let sources: RequestSources = { hostAllowed: () => false, originAllowed: () => false };
  // This gateway's resource URI (RFC 8707: the audience of identity-provider tokens) and where its metadata is.
  let resource = "";
  let metadataPath = "";
  let metadataUrl = "";
  const write = options.log ?? ((line: string) => process.stderr.write(`agentcap serve: ${line}\n`));
  // Control characters could forge or split log lines; request data and error texts reach the log.
  const log = (line: string) => {
    write(line.replace(/\p{Cc}+/gu, " "));
  };
  const explorer = gatewayExplorer(gateway, log);

  /** 503 with Retry-After: whether the token was revoked cannot be looked up now, so it is not accepted, and the client should come back. */
  const storeDown = (req: IncomingMessage, res: ServerResponse, error: StoreUnavailable): void => {
    log(`503 for ${req.method ?? "?"} ${req.url ?? "?"} from ${req.socket.remoteAddress ?? "?"}: ${error.code}: ${error.message}`);
    const refusal = tokenRefusal(error);
    send(res, 503, { jsonrpc: "2.0", error: { code: -32000, message: `${refusal.code}: ${refusal.description}` }, id: null }, { "retry-after": String(STORE_RETRY_AFTER_S) });
  };

  const challenge = (req: IncomingMessage, res: ServerResponse, error: AgentcapError | null): void => {
    if (error instanceof StoreUnavailable) {
      storeDown(req, res, error);
      return;
    }
    const parts = [`realm="agentcap"`, `resource_metadata=${quoted(metadataUrl)}`, ...scopeParam()];
    let message = "this MCP server needs a bearer token in the Authorization header";
    if (error !== null) {
      const refusal = tokenRefusal(error);
      parts.push(`error="invalid_token"`, `error_description=${quoted(refusal.description)}`);
      message = `${refusal.code}: ${refusal.description}`;
      log(`401 for ${req.method ?? "?"} ${req.url ?? "?"} from ${req.socket.remoteAddress ?? "?"}: ${error.code}: ${error.message}`);
    }
    send(res, 401, { jsonrpc: "2.0", error: { code: -32001, message }, id: null }, { "www-authenticate": `Bearer ${parts.join(", ")}` });
  };

  /** The scopes a token needs, as a challenge's scope parameter (none when the configuration names none). */
  const scopeParam = (): string[] => {
    const scopes = gateway.config.oauth?.scopes ?? [];
    return scopes.length === 0 ? [] : [`scope=${quoted(scopes.join(" "))}`];
  };

  /** 403 for a valid token that cannot open a session: it lacks a scope (RFC 6750 insufficient_scope), or the policy grants its principal nothing. */
  const forbid = (req: IncomingMessage, res: ServerResponse, error: InsufficientScope | CapabilityDenied): void => {
    log(`403 for ${req.method ?? "?"} ${req.url ?? "?"} from ${req.socket.remoteAddress ?? "?"}: ${error.code}: ${error.message}`);
    if (error instanceof InsufficientScope) {
      const parts = [`realm="agentcap"`, `error="insufficient_scope"`, ...scopeParam(), `resource_metadata=${quoted(metadataUrl)}`, `error_description="the token lacks a scope this server requires"`];
      send(res, 403, { jsonrpc: "2.0", error: { code: -32003, message: `${error.code}: the token lacks a scope this server requires` }, id: null }, { "www-authenticate": `Bearer ${parts.join(", ")}` });
    } else send(res, 403, { jsonrpc: "2.0", error: { code: -32003, message: `${error.code}: this server grants the token's principal nothing` }, id: null });
  };

  /** The capability of the request's token, or null after answering 401 (or 403 for a token that can open no session). */
  const authenticate = async (req: IncomingMessage, res: ServerResponse, fresh: boolean): Promise<{ token: string; capability: Capability } | null> => {
    const token = bearer(req);
    if (token === null) {
      challenge(req, res, null);
      return null;
    }
    try {
      return { token, capability: await gateway.authenticate(token, { fresh, resource }) };
    } catch (e) {
      if (e instanceof InsufficientScope || e instanceof CapabilityDenied) {
        forbid(req, res, e);
        return null;
      }
      if (!(e instanceof AgentcapError)) throw e;
      challenge(req, res, e);
      return null;
    }
  };

  /**
   * The parsed JSON body of a POST, read within the size limit; undefined for
   * other methods (the transport reads no body for them). Null once the
   * request has been answered (413, 400) or its connection is gone.
   */
  const body = async (req: IncomingMessage, res: ServerResponse): Promise<{ readonly value: unknown } | undefined | null> => {
    if (req.method !== "POST") return undefined;
    const read = await readJsonBody(req, limits.maxBodyBytes);
    switch (read.kind) {
      case "json":
        return { value: read.value };
      case "too-large":
        // The connection is closed after the answer: the rest of the body is not worth reading.
        send(res, 413, { jsonrpc: "2.0", error: { code: -32600, message: `the request body is larger than ${limits.maxBodyBytes} bytes` }, id: null }, { connection: "close" });
        return null;
      case "malformed":
        send(res, 400, { jsonrpc: "2.0", error: { code: -32700, message: "Parse error: the request body is not JSON" }, id: null });
        return null;
      case "gone":
        return null;
    }
  };

  const handleMcp = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const sessionId = req.headers["mcp-session-id"];
    if (typeof sessionId === "string") {
      const entry = sessions.get(sessionId);
      if (entry === undefined) {
        // A session closed because its token or principal was revoked answers its client with 401, as any refused token is.
        const token = bearer(req);
        try {
          // An identity provider's token is only checked by the provider's keys, fetched asynchronously: its client just initializes again.
          if (token !== null && token !== "" && !looksLikeJwt(token)) gateway.inspect(token);
        } catch (e) {
          if (!(e instanceof AgentcapError)) throw e;
          challenge(req, res, e);
          return;
        }
        send(res, 404, { jsonrpc: "2.0", error: { code: -32001, message: "session not found; initialize a new one" }, id: null });
        return;
      }
      const session = entry.value;
      // The token that opened the session was verified then; what may have happened to it since (revocation, expiry) the check below sees.
      if (bearer(req) !== session.token) {
        const auth = await authenticate(req, res, false);
        if (auth === null) return;
        send(res, 403, { jsonrpc: "2.0", error: { code: -32003, message: "this session is bound to the token that opened it; present that token, or initialize a new session" }, id: null }); return;
      }
      /*
       * A request keeps its session busy (neither idle nor replaceable) until it is answered. The event
       * stream a client holds open with GET does not: SDK clients hold one for the whole session, so a
       * session nobody sends requests to would otherwise never end.
       */
      if (req.method !== "GET") {
        res.once("close", sessions.begin(sessionId));
        answering(session, res);
      }
      // A session whose token, principal or session was revoked (here or in another process), or whose token expired, is over.
      const dead = deadDenial(session.capability);
      // The token store cannot say whether it was: the session stays, and this request is refused for now.
      if (dead !== null && dead.code === "ERR_STORE_UNAVAILABLE") {
        challenge(req, res, denialError(dead));
        return;
      }
      if (dead !== null && (dead.code === "ERR_REVOKED" || dead.code === "ERR_EXPIRED")) {
        sessions.remove(sessionId, dead.reason);
        challenge(req, res, denialError(dead));
        return;
      }
      const parsed = await body(req, res);
      if (parsed === null) return;
      const reused = parsed === undefined ? null : session.running.claim(requestIds(parsed.value), res);
      if (reused !== null) {
        send(res, 400, { jsonrpc: "2.0", error: { code: -32600, message: `Invalid Request: a request with id ${JSON.stringify(reused)} is already under way in this session; give each request an id of its own` }, id: reused });
        return;
      }
      return session.transport.handleRequest(req, res, parsed?.value);
    }
    const auth = await authenticate(req, res, true);
    if (auth === null) return;
    const parsed = await body(req, res);
    if (parsed === null) {
      gateway.endSession(auth.capability);
      return;
    }
    // The gateway names the session before it exists, so its capability carries the name: a caretaker link labelled with it.
    const id = randomUUID();
    const capability = caretaker(auth.capability, { session: id }).capability;
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => id });
    const session: Session = { token: auth.token, capability, transport, unwatch: () => { gateway.endSession(capability); }, answering: 0, state: "open", grace: null, running: new RunningRequests() };
    // In the table before the initialize is answered, so initializes sent at once cannot overshoot its limits.
    const refused = sessions.open(id, capability.mint.principal, auth.token, session, expiresAt(capability));
    if (refused !== null) {
      gateway.endSession(capability);
      const status = refused.kind === "total" ? 503 : 429;
      send(res, status, { jsonrpc: "2.0", error: { code: -32000, message: refused.message }, id: null }, { "retry-after": "5" });
      return;
    }
    res.once("close", sessions.begin(id));
    answering(session, res);
    const { maxCallsPerSession, maxQueuedCalls } = gateway.config.sessions;
    const server = sessionServer(gateway, capability, { limit: chainLimiters(callLimiter(maxCallsPerSession, maxQueuedCalls, "this session"), calls) });
    session.unwatch = () => {
      server.dispose();
      gateway.endSession(capability);
    };
    // Closed as soon as the store learns that what it holds was revoked; its client's next request then gets 401.
    const unwatchStore = gateway.tokenStore.watchSession(capability, (reason) => {
      log(`session ${id} closed: ${reason}`);
      sessions.remove(id, reason);
    });
    if (session.state === "open") {
      session.unwatch = () => {
        unwatchStore();
        server.dispose();
        gateway.endSession(capability);
      };
    } else {
      // Revoked already: the store closed it while being asked to watch it, so the watch ends here.
      unwatchStore();
    }
    // Ended by its client (DELETE) or by the table: either way it leaves the table.
    transport.onclose = () => {
      sessions.remove(id, "closed");
    };
    await server.mcp.connect(transport);
    followServer(transport, session.running);
    await transport.handleRequest(req, res, parsed?.value);
    // Anything but an initialize request was refused by the transport: nothing to keep.
    if (transport.sessionId === undefined) sessions.remove(id, "not initialized");
  };

  const handleRevoke = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const token = bearer(req);
    if (token === null) { challenge(req, res, null); return; }
    // No body at all asks to revoke the bearer token itself.
    const length = req.headers["content-length"];
    const hasBody = req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
    const parsed = hasBody ? await body(req, res) : undefined;
    if (parsed === null) return;
    const asked = revokeBody(parsed?.value);
    if (typeof asked === "string") { send(res, 400, { error: asked }); return; }
    try {
      // An identity provider's token is refused by gateway.revoke with what to do instead.
      if (!looksLikeJwt(token)) inspectToken(token);
    } catch (e) {
      if (!(e instanceof AgentcapError)) throw e;
      challenge(req, res, e); return;
    }
    try {
      const report = await gateway.revoke(token, asked);
      send(res, 200, { revoked: true, kind: report.kind, id: report.id, reached: report.reached });
    } catch (e) {
      if (!(e instanceof AgentcapError)) throw e;
      log(`revocation refused for ${req.socket.remoteAddress ?? "?"}: ${e.code}: ${e.message}`);
      // The holder learns only that its capability does not reach this revocation, or what was wrong with the request.
      if (e instanceof StoreUnavailable) storeDown(req, res, e);
      else if (isDenial(e)) send(res, 403, { error: "forbidden", code: e.code, message: "this token's capability does not grant this revocation" });
      else if (e instanceof InvalidInput) send(res, 400, { error: "invalid_request", code: e.code, message: e.message });
      else throw e;
    }
  };

  /** Refuses a bad bearer token before the body's request is looked at (401, as for /mcp). */
  const inspectToken = (token: string): void => {
    gateway.inspect(token);
  };

  /** The protected resource metadata (RFC 9728): what this resource is, and which authorization servers issue tokens for it. */
  const metadata = (): Record<string, unknown> => {
    const oauth = gateway.config.oauth;
    return {
      resource,
      ...(oauth === undefined ? {} : { authorization_servers: [oauth.issuer] }),
      ...(oauth === undefined || oauth.scopes.length === 0 ? {} : { scopes_supported: oauth.scopes }),
      bearer_methods_supported: ["header"],
      resource_name: "agentcap gateway",
    };
  };

  const refuse = (req: IncomingMessage, res: ServerResponse, what: "Host" | "Origin", value: string | undefined): void => {
    log(`403 for ${req.method ?? "?"} ${req.url ?? "?"} from ${req.socket.remoteAddress ?? "?"}: ${what} ${JSON.stringify(value ?? null)} is not allowed; listen.allowed${what}s adds more`);
    send(res, 403, { jsonrpc: "2.0", error: { code: -32000, message: `Forbidden: ${what} not allowed` }, id: null });
  };

  /*
   * Node answers a request whose headers or body arrive too slowly with 408,
   * and over-long headers with 431, then closes the connection. It looks for
   * late requests every connectionsCheckingInterval (30 s by default), which
   * would let a short timeout run far over; a quarter of the shorter one,
   * within 25 ms to 1 s, keeps them close to what is configured.
   */
  const server = createServer({
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4))),
  }, (req, res) => {
    const route = async (): Promise<void> => {
      // Parsed inside the guarded route: a request target such as `//` or `http://[` must not escape to the process.
      const url = URL.parse(req.url ?? "/", origin);
      if (url === null) { send(res, 400, { error: "malformed request target" }); return; }
      // A target in absolute form (or `//name/…`) names a host of its own, which HTTP says takes the place of Host: both must pass.
      for (const host of url.host === originHost ? [req.headers.host] : [req.headers.host, url.host]) {
        if (!sources.hostAllowed(host)) { refuse(req, res, "Host", host); return; }
      }
      const from = req.headers.origin;
      if (from !== undefined && !sources.originAllowed(from)) { refuse(req, res, "Origin", from); return; }
      if (url.pathname === MCP_PATH) await handleMcp(req, res);
      else if (url.pathname === REVOKE_PATH && req.method === "POST") await handleRevoke(req, res);
      else if (url.pathname === EXPLORE_PATH || url.pathname.startsWith(`${EXPLORE_PATH}/`)) await explorer.handle(req, res, url);
      else if ((url.pathname === METADATA_PATH || url.pathname === metadataPath) && req.method === "GET") send(res, 200, metadata());
      else send(res, 404, { error: "not found" });
    };
    route().catch((e: unknown) => {
      log(`500 for ${req.method ?? "?"} ${req.url ?? "?"}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      if (!res.headersSent) send(res, 500, { jsonrpc: "2.0", error: { code: -32603, message: "internal error" }, id: null });
      else res.end();
    });
  });
  /*
   * An idle connection stays open longer than clients keep theirs (undici
   * keeps one 4 s, or what this server's Keep-Alive header says less 2 s), so
   * the client is the one to close it: with Node's 5 s, a client whose event
   * loop ran a second late sent its next POST on a connection the gateway had
   * just closed, and that call got no answer. An idle connection does not
   * count against headersTimeout or requestTimeout (Node applies them only
   * while a request is arriving), so these stay short.
   */
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  await listenOn(server, { ...listen, backlog: gateway.config.listen.backlog }, "gateway");
  const address = server.address() as AddressInfo;
  origin = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  originHost = new URL(origin).host;
  resource = gateway.config.oauth?.resource ?? `${origin}${MCP_PATH}`;
  // RFC 9728 §3.1: the metadata of https://host/mcp is at https://host/.well-known/oauth-protected-resource/mcp.
  const publicResource = new URL(resource);
  metadataPath = `${METADATA_PATH}${publicResource.pathname === "/" ? "" : publicResource.pathname}`;
  metadataUrl = `${publicResource.origin}${metadataPath}`;
  sources = requestSources(address, listen.host, gateway.config.listen);
  return {
    url: `${origin}${MCP_PATH}`,
    openSessions: () => sessions.size,
    close: async () => {
      explorer.close();
      for (const id of sessions.ids()) sessions.remove(id, "the gateway is stopping");
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    },
  };
}
