/**
 * Everything one gateway process holds, opened from a validated
 * configuration: the token mint (when it has the signing key), the verifier
 * and its shared token store, the audit store, the confined tools, the
 * guarded upstreams, and the dispatcher over all of them.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { generateCheckpointKey, openAuditStore, otlpLogStream, type AuditStore, type OtlpStreamStats } from "../audit/index.js";
import { createApprovals, expiresAt, InvalidInput, InvalidToken, keyMintId, systemClock, type Approvals, type ApprovalStore, type AuditSink, type Capability, type Clock, type CredentialSource } from "../kernel/index.js";
import { defined } from "../kernel/internal.js";
import type { Resolver } from "../resources/http/index.js";
import { createDispatcher, type CatalogEntry, type Dispatcher } from "../tools/index.js";
import {
  createTokenMint,
  createVerifier,
  generateKeyPair,
  loadVaultKey,
  openPostgresVault,
  openSqliteVault,
  type CredentialVault,
  openPostgresApprovalStore,
  openPostgresTokenStore,
  openSqliteApprovalStore,
  openSqliteTokenStore,
  toToken,
  type RevocationReport,
  type RevocationTarget,
  type TokenMint,
  type TokenStore,
  type Verifier,
} from "../token/index.js";
import { inspectVerified, publicKeyOf } from "../token/internal.js";
import { approvalWebhook } from "./approval-webhook.js";
import { exchangeTargetOf, type AuditConfig, type CheckpointConfig, type GatewayConfig, type StoreConfig, type UpstreamConfig } from "./config.js";
import { credentialsByOrigin, exchangedCredentials, type ExchangedCredentials, type ExchangeStats } from "./exchanged-credentials.js";
import { openGatewayTools } from "./gateway-tools.js";
import { accessTokens, looksLikeJwt } from "./oauth.js";
import { configuredPolicy } from "./policy.js";
import { exchangeClientCredential, tokenExchanger } from "./token-exchange.js";
import { guardUpstream, type GuardedUpstream } from "./upstream.js";

/** A running gateway's state. It holds no authority of its own: every call brings the capability of its session. */
export interface Gateway {
  readonly config: GatewayConfig;
  readonly dispatcher: Dispatcher;
  readonly tokenStore: TokenStore;
  readonly audit: AuditStore;
  /** The approval flow, when the configuration has `approvals`: requests kept in the token store's database. */
  readonly approvals: Approvals | null;
  /**
   * The tools `capability` reaches now, as clients are shown them: the
   * dispatcher's catalog, less the upstream tools their upstream does not
   * offer now, with each upstream tool's own description and input schema.
   */
  catalog(capability: Capability): readonly GatewayTool[];
  /**
   * Lists, for `capability`'s caller, the upstreams whose tools are listed
   * per caller (they take each caller's own credential) and that it
   * reaches, so that `catalog` shows their tools; waits a bounded time, and
   * never rejects (see GuardedUpstream.prepare).
   */
  prepareCatalog(capability: Capability): Promise<void>;
  /** Calls `listener` after the tools the gateway offers changed (an upstream's tool list changed); returns the unsubscriber. */
  onToolsChanged(listener: () => void): () => void;
  /** Names of upstream tools, whose results are MCP results already and pass through unchanged. */
  readonly passthrough: ReadonlySet<string>;
  /**
   * Verifies a token presented by a client (signature, revocation, expiry),
   * giving the session's capability. For a new session it also waits until a
   * shared store can charge the token's limited blocks, so the first call is
   * not refused for want of a lease. Rejects with InvalidToken, Revoked or Expired.
   *
   * A JWT is an access token of the identity provider `oauth` configures:
   * verified for `resource` (this gateway's resource URI; `oauth.resource`
   * when not given), it gives a capability from the gateway's own mint for
   * the principal its claims name. It may also reject with
   * InsufficientScope, or CapabilityDenied when the policy grants that
   * principal nothing.
   */
  authenticate(token: string, options?: { readonly fresh?: boolean; readonly resource?: string }): Promise<Capability>;
  /**
   * Forgets what the gateway kept for the session of `capability` (one that
   * `authenticate` gave with `fresh`): with a token exchange, its access
   * token and every token exchanged for it. Called when the session ends.
   */
  endSession(capability: Capability): void;
  /**
   * A revocation asked for by the holder of `token` (verified first): with no
   * target, the token itself (and everything derived from it), which any
   * holder may give up; with a target (a principal, session, tenant, role,
   * capability, token block or key id), only if the token's capability has a
   * revoke grant for it (CapabilityDenied otherwise). Recorded in the audit
   * log either way.
   */
  revoke(token: string, request?: { readonly target?: RevocationTarget; readonly reason?: string }): Promise<RevocationReport>;
  /** Checks a token's signature, store, revocation and expiry, as `authenticate` does for a new session; throws InvalidToken, Revoked or Expired. */
  inspect(token: string): void;
  /** The public key set the gateway verifies tokens with, by key id (its own key's and those configured), as `token --public-keys` files hold it. */
  readonly publicKeys: Readonly<Record<string, string>>;
  /** The ids of the mints whose roots this gateway's tools accept: those of its signing and verification keys and, with `oauth`, the mint of identity-provider sessions. */
  readonly mints: readonly string[];
  /** Mints a token for a configured principal; InvalidInput when this process has no signing key. */
  issueToken(principal: string): string;
  /** What the audit log's OpenTelemetry stream has sent, has queued and has dropped (its queue full while the collector was away); null when the configuration streams nowhere. */
  auditStream(): OtlpStreamStats | null;
  /** How many sessions' access tokens, and tokens exchanged for them, the token exchange holds now (never their values); null without oauth.tokenExchange. */
  tokenExchange(): ExchangeStats | null;
  /** Closes upstream connections, then the stores. */
  close(): Promise<void>;
}

/** A tool as the gateway shows it to a client; `revision` grows whenever what is shown of it changes. */
export interface GatewayTool extends CatalogEntry {
  readonly revision: number;
}

/** Options for tests and embedders. */
export interface OpenGatewayOptions {
  /** Guards each upstream; a different one can, for example, give it a transport that counts messages. */
  readonly guard?: typeof guardUpstream;
  /** Resolves host names for the fetch tool and for URL arguments of upstream tools; the system resolver by default. */
  readonly resolver?: Resolver;
  /** Tells when an exchanged token is due for renewal; the system clock by default. */
  readonly clock?: Clock;
  /** The operator's log: a line when a tool sandbox is stopped, or refuses calls for having been stopped too often; standard error by default. */
  readonly log?: (line: string) => void;
}

/** A key file as `agentcap token keygen` writes it. */
export interface KeyFile {
  readonly keyId: number;
  readonly privateKey: string;
}

/** The key in the configuration's key file, or null when it names none (or, with `create` false, when the file does not exist yet). */
function readKeys(config: GatewayConfig["keys"], create = true): KeyFile | null {
  if (config.file === undefined) return null;
  if (!existsSync(config.file)) {
    if (!create) return null;
    if (!config.createIfMissing) throw new InvalidInput(`key file ${config.file} does not exist; create it with \`agentcap token keygen --out ${config.file}\``);
    mkdirSync(path.dirname(config.file), { recursive: true });
    const pair = generateKeyPair();
    writeFileSync(config.file, `${JSON.stringify({ keyId: 1, ...pair }, null, 2)}\n`, { mode: 0o600 });
  }
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(config.file, "utf8"));
  } catch (e) {
    throw new InvalidInput(`key file ${config.file} cannot be read as JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const k = data as Partial<KeyFile> | null;
  if (typeof k !== "object" || k === null || typeof k.keyId !== "number" || typeof k.privateKey !== "string") {
    throw new InvalidInput(`key file ${config.file} must hold { "keyId": <number>, "privateKey": "ed25519-private/<hex>" } as agentcap token keygen writes it`);
  }
  return { keyId: k.keyId, privateKey: k.privateKey };
}

/** The public keys a gateway of `config` verifies tokens with: those configured, and its key file's own. */
export function configuredPublicKeys(config: GatewayConfig): Record<string, string> {
  const keys = readKeys(config.keys, false);
  return { ...config.keys.publicKeys, ...(keys === null ? {} : { [String(keys.keyId)]: publicKeyOf(keys.privateKey) }) };
}

/** The signing key a gateway of `config` mints with (its key file, created when missing and allowed to); InvalidInput when it has none. */
export function configuredSigningKey(config: GatewayConfig): KeyFile {
  const keys = readKeys(config.keys);
  if (keys === null) throw new InvalidInput("this gateway has no signing key (keys.file); it can verify tokens but not mint them");
  return keys;
}

/** The gateway's token store, recording every revocation in `audit`. */
export async function openTokenStore(s: StoreConfig, audit: AuditSink): Promise<TokenStore> {
  if (s.kind === "postgres") return openPostgresTokenStore({ connectionString: s.url, audit, ...defined({ schema: s.schema }) });
  if (s.path !== ":memory:") mkdirSync(path.dirname(s.path), { recursive: true });
  return openSqliteTokenStore(s.path, { audit });
}

/** The approval requests of the gateway whose token store is `s`: a table in the same SQLite file or Postgres schema. */
export async function openApprovalStore(s: StoreConfig): Promise<ApprovalStore> {
  if (s.kind === "postgres") return openPostgresApprovalStore({ connectionString: s.url, ...defined({ schema: s.schema }) });
  if (s.path !== ":memory:") mkdirSync(path.dirname(s.path), { recursive: true });
  return openSqliteApprovalStore(s.path);
}

/**
 * The credential vault of the gateway `config` describes: a table in its
 * token store's database, sealed with the key `credentials` names.
 * Credentials are set only for principals the policy lists, or any with an
 * identity provider (whose users are not listed). Null without a
 * credentials section; VaultKeyMissing when its key is not there.
 */
export async function openCredentialVault(config: GatewayConfig, revocations?: TokenStore): Promise<CredentialVault | null> {
  if (config.credentials === undefined) return null;
  const key = loadVaultKey(config.credentials.key);
  const options = {
    key,
    knownPrincipal: (p: string) => Object.hasOwn(config.policy.principals, p) || config.oauth !== undefined,
    ...defined({ revocations }),
  };
  const s = config.tokenStore;
  if (s.kind === "postgres") return openPostgresVault({ connectionString: s.url, ...defined({ schema: s.schema }), ...options });
  if (s.path !== ":memory:") mkdirSync(path.dirname(s.path), { recursive: true });
  return openSqliteVault(s.path, options);
}

/**
 * The token exchange of the gateway `config` describes, its subject tokens
 * dropped as `revocations` learns of revocations that reach them; null
 * without oauth.tokenExchange. InvalidInput when the client secret is not
 * where the configuration says.
 */
export function openTokenExchange(config: GatewayConfig, revocations: TokenStore, clock: Clock): ExchangedCredentials | null {
  const oauth = config.oauth;
  const te = oauth?.tokenExchange;
  if (oauth === undefined || te === undefined) return null;
  const exchanger = tokenExchanger(oauth.issuer, te, exchangeClientCredential(te));
  return exchangedCredentials({ exchanger, revocations, clock, refreshBeforeMs: te.refreshBeforeSeconds * 1000, maxSubjects: config.sessions.max });
}

/** Whose credentials an upstream's requests carry: the vault's, tokens exchanged for it, or none. */
function upstreamCredentials(u: UpstreamConfig, vault: CredentialSource | null, exchange: ExchangedCredentials | null): CredentialSource | null {
  if (!("url" in u)) return null;
  if (u.credentials === "token-exchange" && exchange !== null) {
    return exchange.source(`upstream ${u.name}`, new URL(u.url).origin, exchangeTargetOf(u.exchange, u.url));
  }
  return u.credentials === "per-principal" ? vault : null;
}

/** The checkpoint signing key in `c.keyFile`, made (for the log named after the issuer) when missing and allowed to. */
function checkpointKey(c: CheckpointConfig, issuer: string): string {
  if (!existsSync(c.keyFile)) {
    if (!c.createKeyIfMissing) throw new InvalidInput(`audit checkpoint key file ${c.keyFile} does not exist; create it with \`agentcap audit keygen --name <log name> --out ${c.keyFile}\``);
    mkdirSync(path.dirname(c.keyFile), { recursive: true });
    writeFileSync(c.keyFile, `${generateCheckpointKey(`${issuer.replace(/[\s+]/g, "-")}/audit`).signerKey}\n`, { mode: 0o600 });
  }
  return readFileSync(c.keyFile, "utf8").trim();
}

/** The gateway's audit store, and what its OpenTelemetry stream has done (null when the configuration streams nowhere). */
export type GatewayAudit = AuditStore & { streamStats(): OtlpStreamStats | null };

/** The gateway's audit store, signing its checkpoints when the configuration names a key and streaming to a collector when it names one; closing it closes the stream after the last checkpoint. */
export async function openAudit(s: AuditConfig, issuer: string): Promise<GatewayAudit> {
  const c = s.checkpoints;
  const checkpoints =
    c === undefined
      ? {}
      : { checkpoints: { key: checkpointKey(c, issuer), sink: c.file, ...defined({ everyEntries: c.everyEntries, everyMs: c.everySeconds === undefined ? undefined : Math.round(c.everySeconds * 1000) }) } };
  const stream = s.otlp === undefined ? null : otlpLogStream(s.otlp);
  const streamed = stream === null ? {} : { stream };
  let store: AuditStore;
  try {
    if (s.kind === "postgres") store = await openAuditStore({ kind: "postgres", url: s.url, ...defined({ schema: s.schema }), ...checkpoints, ...streamed });
    else {
      if (s.path !== ":memory:") mkdirSync(path.dirname(s.path), { recursive: true });
      store = await openAuditStore({ kind: "sqlite", path: s.path, ...defined({ synchronous: s.synchronous }), ...checkpoints, ...streamed });
    }
  } catch (e) {
    await stream?.close();
    throw e;
  }
  return Object.freeze({
    ...store,
    streamStats: () => stream?.stats() ?? null,
    close: async () => {
      await store.close();
      await stream?.close();
    },
  });
}

/**
 * Opens a gateway from `config`. Throws InvalidInput for a missing key file,
 * a missing database, an upstream tool that does not exist, and the like;
 * whatever was opened before the failure is closed again.
 */
export async function openGateway(config: GatewayConfig, options: OpenGatewayOptions = {}): Promise<Gateway> {
  const cleanup: (() => unknown)[] = [];
  const closeAll = async () => {
    for (const c of cleanup.reverse()) await c();
  };
  try {
    const keys = readKeys(config.keys);
    const audit = await openAudit(config.audit, config.issuer);
    cleanup.push(() => audit.close());
    const tokenStore = await openTokenStore(config.tokenStore, audit);
    cleanup.push(() => tokenStore.close());
    const mint: TokenMint<unknown> | null =
      keys === null
        ? null
        : createTokenMint({ issuer: config.issuer, policy: configuredPolicy(config.policy), signingKey: keys.privateKey, keyId: keys.keyId, store: tokenStore });
    const publicKeys: Record<string, string> = { ...config.keys.publicKeys, ...(mint === null ? {} : { [String(mint.keyId)]: mint.publicKey }) };
    // The gateway's resources and dispatcher accept only roots its own keys signed: a capability minted in this process by any other mint is refused.
    // Sessions opened with an identity provider's access token have roots from the gateway's own mint for them, trusted likewise.
    const oauth = config.oauth === undefined ? null : accessTokens(config.oauth, config.policy, config.issuer, tokenStore);
    const mints = [...Object.entries(publicKeys).map(([keyId, publicKey]) => keyMintId(Number(keyId), publicKey)), ...(oauth === null ? [] : [oauth.mintId])];
    const vault = await openCredentialVault(config, tokenStore);
    if (vault !== null) cleanup.push(() => vault.close());
    const exchange = openTokenExchange(config, tokenStore, options.clock ?? systemClock);
    if (exchange !== null) cleanup.push(() => { exchange.close(); });
    const exchangeOrigins = new Map(Object.entries(config.oauth?.tokenExchange?.origins ?? {}).flatMap(([origin, target]) =>
      exchange === null ? [] : [[origin, exchange.source(`origin ${origin}`, origin, target)] as const],
    ));
    const fetchCredentials = credentialsByOrigin(exchangeOrigins, vault);
    const log = options.log ?? ((line: string) => process.stderr.write(`agentcap gateway: ${line}\n`));
    const own = await openGatewayTools(config.tools, { audit, mints, resolver: options.resolver, credentials: fetchCredentials ?? undefined, log });
    cleanup.push(() => own.close());
    const guard = options.guard ?? guardUpstream;
    const upstreams: GuardedUpstream[] = [];
    for (const u of config.upstreams) {
      const credentials = upstreamCredentials(u, vault, exchange);
      const g = await guard(u, { audit, ...defined({ resolver: options.resolver, credentials: credentials ?? undefined }) });
      upstreams.push(g);
      cleanup.push(() => g.close());
    }
    const upstreamOf = new Map(upstreams.flatMap((u) => u.tools.map((t) => [t.name, u] as const)));
    let approvals: Approvals | null = null;
    if (config.approvals !== undefined) {
      const store = await openApprovalStore(config.tokenStore);
      cleanup.push(() => store.close());
      const { webhook, waitSeconds } = config.approvals;
      approvals = createApprovals({ audit, store, mints, ...defined({ waitSeconds, notify: webhook === undefined ? undefined : approvalWebhook(webhook) }) });
    }
    const dispatcher = createDispatcher({ tools: [...own.tools, ...upstreams.flatMap((u) => u.tools)], audit, mints, ...(approvals === null ? {} : { approvals }) });
    const verifyOptions = { publicKeys, store: tokenStore };
    const verifier: Verifier = createVerifier(verifyOptions);
    return Object.freeze({
      config,
      dispatcher,
      tokenStore,
      audit,
      approvals,
      catalog: (capability: Capability) =>
        dispatcher.catalog(capability).flatMap((entry): GatewayTool[] => {
          const upstream = upstreamOf.get(entry.name);
          if (upstream === undefined) return [{ ...entry, revision: 0 }];
          const shown = upstream.listing(entry.name, capability);
          return shown === undefined ? [] : [{ name: entry.name, ...shown }];
        }),
      prepareCatalog: async (capability: Capability) => {
        // Only upstreams whose tools the capability reaches are asked, so no caller's credential goes to an upstream it may not use.
        const reached = new Set(dispatcher.catalog(capability).map((entry) => entry.name));
        await Promise.all(upstreams.filter((u) => u.tools.some((t) => reached.has(t.name))).map((u) => u.prepare(capability)));
      },
      onToolsChanged: (listener: () => void) => {
        const unsubscribe = upstreams.map((u) => u.onChanged(listener));
        return () => {
          for (const u of unsubscribe) u();
        };
      },
      passthrough: new Set(upstreams.flatMap((u) => u.tools.map((t) => t.name))),
      mints,
      publicKeys: Object.freeze({ ...publicKeys }),
      authenticate: async (token: string, opts?: { readonly fresh?: boolean; readonly resource?: string }) => {
        if (looksLikeJwt(token)) {
          if (oauth === null) throw new InvalidToken("token is a JWT, but this gateway takes no identity-provider tokens (no oauth in its configuration)");
          const resource = opts?.resource ?? config.oauth?.resource;
          if (resource === undefined) throw new InvalidToken("an identity-provider token needs the gateway's resource URI to check its audience; set oauth.resource");
          const capability = await oauth.authenticate(token, resource);
          // Kept for the token exchange of a new session's calls, by its root, in that closure only, until endSession.
          if (opts?.fresh === true) exchange?.remember(capability, token);
          return capability;
        }
        // A new session looks at revocation and expiry before it exists; later requests reuse the verified capability, whose every check consults the store.
        if (opts?.fresh !== true) return verifier.verify(token);
        inspectVerified(token, verifyOptions);
        return verifier.verifyShared(token);
      },
      endSession: (capability: Capability) => {
        exchange?.forget(capability);
      },
      revoke: async (token: string, request?: { readonly target?: RevocationTarget; readonly reason?: string }) => {
        if (looksLikeJwt(token)) throw new InvalidInput("revocations are asked for with a Biscuit token; an identity provider's access token is revoked at the provider, and its principal with a token that has a revoke grant");
        inspectVerified(token, verifyOptions);
        const by = verifier.verify(token);
        const reason = request?.reason ?? "revoked by its holder through the gateway";
        if (request?.target === undefined) return tokenStore.revoke({ capabilityId: by.id }, { reason, by, expiresAt: expiresAt(by) });
        return tokenStore.revoke(request.target, { reason, by });
      },
      inspect: (token: string) => {
        inspectVerified(token, verifyOptions);
      },
      issueToken: (principal: string) => {
        if (mint === null) throw new InvalidInput("this gateway has no signing key (keys.file); it can verify tokens but not mint them");
        const declared = config.policy.principals[principal];
        return toToken(mint.issue({ id: principal, tenants: declared?.tenants ?? [], roles: declared?.roles ?? [] }));
      },
      auditStream: () => audit.streamStats(),
      tokenExchange: () => exchange?.stats() ?? null,
      close: closeAll,
    });
  } catch (e) {
    await closeAll();
    throw e;
  }
}
