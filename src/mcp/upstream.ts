/**
 * The upstream guard: agentcap connects to an existing MCP server as a
 * client and re-exposes the tools the configuration lists, as agentcap tools
 * named `<upstream>__<tool>`. Each listed argument is canonicalized into the
 * request its value stands for (a path like the `fs` domain, a URL like the
 * `http` domain); the dispatcher authorizes those requests before the handler
 * runs, so a denied call never reaches the upstream. The handler authorizes
 * the same requests again on its narrowed capability, records each as a
 * resource access (its intent before the upstream is called, so a query by
 * resource finds what an upstream touched), and sends the canonical values,
 * so the upstream acts on exactly what was authorized and recorded.
 *
 * A URL argument is confined by the HTTP resource's own code: its host name
 * is resolved with the gateway's resolver and every address is checked, so a
 * granted name that points at 169.254.169.254 or another private address the
 * grant does not name is refused here as the built-in fetch tool refuses it.
 * What the guard cannot do is choose the address the upstream connects to:
 * the upstream resolves the name again, and a name whose answer changes
 * between the two lookups (DNS rebinding) or an upstream that follows
 * redirects reaches what the check never saw. An upstream configured with
 * `urlHosts: "ip-literal"` takes only URLs whose host is an IP address, which
 * leaves the upstream nothing to resolve.
 */
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { z } from "zod";
import { canonicalHttpUrl, defined, isIpLiteral } from "../kernel/internal.js";
import { authorize, denialError, InvalidInput, type AuditSink, type Capability, type CredentialSource, type FsRequest, type HttpRequest } from "../kernel/index.js";
import { lexicalPath, realPath } from "../resources/fs/internal.js";
import { systemResolver, type Resolver } from "../resources/http/index.js";
import { authorizeUrl } from "../resources/http/internal.js";
import { audited, jsonBytes, type Access } from "../resources/internal.js";
import { defineTool, type AnyTool, type JsonSchema } from "../tools/index.js";
import type { ArgumentKind, UpstreamConfig } from "./config.js";
import { principalClients, type PrincipalClients } from "./upstream-credentials.js";
import { Client, getDefaultEnvironment, StdioClientTransport, StreamableHTTPClientTransport, type CallToolResult, type McpTool, type Transport } from "./sdk.js";

/** Separates an upstream's name from its tool's name in the exposed name. */
export const UPSTREAM_SEPARATOR = "__";

/** What clients are shown of one exposed upstream tool: the upstream's own description and input schema, in place of the guard's loose one. */
export interface UpstreamListing {
  readonly description: string;
  readonly inputSchema: JsonSchema;
  /** Grows each time the upstream changes what this tool shows, or stops or starts offering it. */
  readonly revision: number;
}

/**
 * An upstream behind the guard: its exposed tools, what to show of each, and
 * how to disconnect. An upstream that takes each caller's own credential
 * (`credentials` "per-principal" or "token-exchange") cannot be asked for
 * its tools with no one's, so it is listed per principal, over that
 * principal's own connection and with that caller's credential, when one of
 * the principal's sessions first lists the tools or calls one; what one
 * principal is shown is never shown to another.
 */
export interface GuardedUpstream {
  readonly name: string;
  /** Every tool the configuration exposes; those the upstream does not offer now (to that caller) refuse calls (InvalidInput). */
  readonly tools: readonly AnyTool[];
  /** What to show `capability`'s caller for an exposed tool name now; undefined while the upstream does not offer it (to that caller, or until listed for that caller). */
  listing(name: string, capability: Capability): UpstreamListing | undefined;
  /**
   * Lists the upstream's tools for `capability`'s principal when they are
   * listed per principal and not listed for it yet, waiting at most
   * LISTING_WAIT_MS (a later answer still counts, announced through
   * `onChanged`); resolves at once otherwise. Never rejects: a principal
   * whose listing fails is shown none of the upstream's tools, and is
   * listed again at its next try.
   */
  prepare(capability: Capability): Promise<void>;
  /** Calls `listener` after the upstream's tool list changed in a way clients see (one of its exposed tools appeared, vanished or changed, for anyone); returns the unsubscriber. */
  onChanged(listener: () => void): () => void;
  close(): Promise<void>;
}

/** How long a session's tool listing waits for a per-principal upstream to answer its first listing. */
export const LISTING_WAIT_MS = 10_000;

/** The client transport for an upstream: a spawned command (stdio) or a Streamable HTTP URL. */
export function upstreamTransport(config: UpstreamConfig): Transport {
  if ("url" in config) return new StreamableHTTPClientTransport(new URL(config.url));
  return new StdioClientTransport({
    command: config.command,
    args: [...(config.args ?? [])],
    // Only the SDK's short list of safe variables and the configured ones: the gateway's secrets stay here.
    env: { ...getDefaultEnvironment(), ...(config.env ?? {}) },
    stderr: "inherit",
    ...defined({ cwd: config.root }),
  });
}

type Need = FsRequest | HttpRequest;

/** What canonicalizing an argument needs to know about its upstream. */
export type ArgumentContext = Pick<UpstreamConfig, "name" | "root" | "urlHosts">;

/** The canonical request one argument value stands for; InvalidInput when the value cannot be one. */
function canonical(kind: ArgumentKind, value: string, upstream: ArgumentContext, where: string): Need {
  const root = upstream.root;
  if (kind.startsWith("fs.")) {
    if (!path.isAbsolute(value) && root === undefined) {
      throw new InvalidInput(`${where}: relative path ${JSON.stringify(value)} needs the upstream's root; give an absolute path`);
    }
    return { action: kind as FsRequest["action"], path: realPath(lexicalPath(value, root ?? "/")) };
  }
  let url: URL;
  try {
    url = canonicalHttpUrl(value);
  } catch (e) {
    throw e instanceof InvalidInput ? new InvalidInput(`${where}: ${e.message}`) : e;
  }
  if (upstream.urlHosts === "ip-literal" && !isIpLiteral(url.hostname)) {
    throw new InvalidInput(
      `${where}: ${JSON.stringify(value)} names its host by name; upstream ${upstream.name} takes only URLs whose host is an IP address (urlHosts: "ip-literal"), as agentcap cannot choose the address a name leads the upstream to`,
    );
  }
  return { action: "http.request", method: kind.slice("http.".length) as HttpRequest["method"], url: url.href };
}

/**
 * The requests a call's arguments stand for, and the arguments with every
 * constrained value replaced by its canonical form. A constrained argument
 * must be present, as a string or an array of strings: an upstream's default
 * for a missing one would be a request nobody authorized.
 */
export function constrainArguments(
  tool: string,
  constraints: Readonly<Record<string, ArgumentKind | readonly ArgumentKind[]>>,
  input: Readonly<Record<string, unknown>>,
  upstream: ArgumentContext,
): { readonly needs: readonly Need[]; readonly args: Record<string, unknown> } {
  const needs: Need[] = [];
  const args: Record<string, unknown> = { ...input };
  for (const [name, spec] of Object.entries(constraints)) {
    const where = `tool ${tool}: argument ${name}`;
    const value = Object.hasOwn(input, name) ? input[name] : undefined;
    const values = typeof value === "string" ? [value] : Array.isArray(value) && value.every((v) => typeof v === "string") ? (value) : null;
    if (values === null) throw new InvalidInput(`${where} must be a string or an array of strings; agentcap checks it before the upstream sees it`);
    const kinds = typeof spec === "string" ? [spec] : spec;
    const canonicalValues = values.map((v) => {
      const requests = kinds.map((k) => canonical(k, v, upstream, where));
      needs.push(...requests);
      const first = requests[0] as Need;
      return first.action === "http.request" ? first.url : first.path;
    });
    args[name] = typeof value === "string" ? canonicalValues[0] : canonicalValues;
  }
  return { needs, args };
}

/** How the guard reaches an upstream and resolves the host names in its URL arguments. */
export interface GuardOptions {
  /** The client transport; by default the one the configuration describes. */
  readonly transport?: Transport;
  /** Resolves host names of URL arguments, as the gateway's HTTP resource does; the system resolver by default. */
  readonly resolver?: Resolver;
  /**
   * Where each confined argument's access is recorded, as a resource records
   * its own: one resource event per argument, its intent before the upstream
   * is called. Without it, only the tool call is recorded (by the dispatcher).
   */
  readonly audit?: AuditSink;
  /** Each caller's own credential for the upstream's origin, for an upstream configured with `credentials` ("per-principal" or "token-exchange"). */
  readonly credentials?: CredentialSource;
}

/**
 * Authorizes one confined argument's request on `access`, recording its
 * intent; a URL's host is resolved and every address checked first (the
 * upstream still resolves it again itself: see the note at the top).
 */
async function admitNeed(access: Access, cap: Capability, need: Need, resolver: Resolver, signal: AbortSignal): Promise<void> {
  if (need.action === "http.request") {
    await authorizeUrl(access, cap, need, resolver, signal);
    return;
  }
  const decision = access.decided(need, authorize(cap, need));
  if (!decision.allowed) throw denialError(decision);
  await access.proceed();
}

/**
 * Connects to one upstream, lists its tools, and wraps the configured ones.
 * Throws InvalidInput when the configuration names a tool the upstream does
 * not offer, or a name that would not be a valid tool name once prefixed.
 * An upstream listed per principal is neither connected to nor listed here:
 * each principal's first listing says what it is offered.
 */
export async function guardUpstream(config: UpstreamConfig, options: GuardOptions = {}): Promise<GuardedUpstream> {
  const resolver = options.resolver ?? systemResolver;
  const exposedName = (upstreamName: string) => `${config.name}${UPSTREAM_SEPARATOR}${upstreamName}`;
  const listeners = new Set<() => void>();
  const announce = () => {
    for (const listener of [...listeners]) listener();
  };
  // Calls to an upstream that takes each caller's credential go over a connection of the caller's own, which also lists its tools for that caller.
  let perPrincipal: PrincipalClients | null = null;
  const byPrincipal = new Map<string, Map<string, UpstreamListing>>();
  const listing = new Map<string, Promise<void>>();
  if ("url" in config && config.credentials !== undefined) {
    if (options.credentials === undefined) {
      throw new InvalidInput(`upstream ${config.name} takes each caller's own credential, and the gateway has none to give (the credentials section for the vault, or oauth.tokenExchange)`);
    }
    perPrincipal = principalClients(config.url, options.credentials, {
      toolsChanged: (principal, offered) => {
        const own = byPrincipal.get(principal);
        if (own !== undefined && take(own, offered)) announce();
      },
      forgotten: (principal) => {
        byPrincipal.delete(principal);
      },
    });
  }
  /** Takes an upstream tool list into `listings`; true when what clients are shown of the exposed tools changed. */
  const take = (listings: Map<string, UpstreamListing>, offered: readonly McpTool[]): boolean => {
    const byName = new Map(offered.map((t) => [t.name, t]));
    let changed = false;
    for (const upstreamName of Object.keys(config.tools)) {
      const name = exposedName(upstreamName);
      const before = listings.get(name);
      const listed = byName.get(upstreamName);
      if (listed === undefined) {
        changed ||= before !== undefined;
        listings.delete(name);
        continue;
      }
      const description = `${listed.description ?? upstreamName} (via agentcap from upstream ${config.name})`;
      if (before !== undefined && before.description === description && isDeepStrictEqual(before.inputSchema, listed.inputSchema)) continue;
      changed = true;
      listings.set(name, { description, inputSchema: listed.inputSchema, revision: (before?.revision ?? 0) + 1 });
    }
    return changed;
  };
  const shared = new Map<string, UpstreamListing>();
  const listingsOf = (cap: Capability): Map<string, UpstreamListing> | undefined => (perPrincipal === null ? shared : byPrincipal.get(cap.mint.principal));
  /** Lists the tools for `cap`'s principal over its own connection (one listing at a time per principal). */
  const listFor = (clients: PrincipalClients, cap: Capability): Promise<void> => {
    const principal = cap.mint.principal;
    let pending = listing.get(principal);
    if (pending === undefined) {
      pending = clients
        .run(cap, (c) => c.listTools())
        .then(({ tools: offered }) => {
          const own = new Map<string, UpstreamListing>();
          take(own, offered);
          byPrincipal.set(principal, own);
          if (own.size > 0) announce();
        })
        .catch(() => undefined)
        .finally(() => listing.delete(principal));
      listing.set(principal, pending);
    }
    return pending;
  };
  const prepare = async (cap: Capability): Promise<void> => {
    if (perPrincipal === null) return;
    // A session looking at the principal's list is one its connection may speak for, when the upstream announces a change.
    perPrincipal.touch(cap);
    if (byPrincipal.has(cap.mint.principal)) return;
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, LISTING_WAIT_MS);
      timer.unref();
    });
    await Promise.race([listFor(perPrincipal, cap), waited]);
    clearTimeout(timer);
  };

  // The upstream announces changes to its list (when it advertises tools.listChanged); the client then lists its tools again.
  const client =
    perPrincipal === null
      ? new Client(
          { name: "agentcap-gateway", version: "0.1.0" },
          {
            listChanged: {
              tools: {
                onChanged: (error, offered) => {
                  if (error === null && offered !== null && take(shared, offered)) announce();
                },
              },
            },
          },
        )
      : null;
  const callAs = (cap: Capability, call: (c: Client) => Promise<CallToolResult>): Promise<CallToolResult> => (perPrincipal === null ? call(client as Client) : perPrincipal.run(cap, call));
  const closeAll = async () => {
    await perPrincipal?.close();
    await client?.close();
  };
  try {
    if (client !== null) {
      await client.connect(options.transport ?? upstreamTransport(config));
      const offered = (await client.listTools()).tools;
      take(shared, offered);
      for (const upstreamName of Object.keys(config.tools)) {
        if (!offered.some((t) => t.name === upstreamName)) {
          throw new InvalidInput(`upstream ${config.name} has no tool named ${upstreamName}; it offers ${offered.map((t) => t.name).join(", ") || "no tools"}`);
        }
      }
    }
    const tools: AnyTool[] = [];
    for (const [upstreamName, constraints] of Object.entries(config.tools)) {
      const exposed = exposedName(upstreamName);
      // A tool the upstream stopped offering is refused before anything is authorized or sent; per principal, once the caller's listing says so.
      const offeredNow = (cap: Capability | null) => {
        const listings = cap === null ? (perPrincipal === null ? shared : undefined) : listingsOf(cap);
        if (listings === undefined) return;
        if (!listings.has(exposed)) throw new InvalidInput(`upstream ${config.name} ${perPrincipal === null ? "no longer offers" : "does not offer this caller"} tool ${upstreamName}`);
      };
      const tool = defineTool(
        {
          name: exposed,
          description: shared.get(exposed)?.description ?? upstreamName,
          // The upstream validates the rest itself; the constrained arguments are checked in needs.
          input: z.looseObject({}),
          needs: (input) => {
            offeredNow(null);
            return constrainArguments(exposed, constraints, input, config).needs;
          },
        },
        async (input, cap, ctx): Promise<CallToolResult> => {
          await prepare(cap);
          offeredNow(cap);
          // Canonicalized again and authorized on the narrowed capability, as a resource does: a link swapped since needs ran is refused here.
          const { needs, args } = constrainArguments(exposed, constraints, input, config);
          const tenant = ctx.tenant === null ? {} : { tenant: ctx.tenant };
          const call = () => callAs(cap, async (c) => (await c.callTool({ name: upstreamName, arguments: args }, undefined, { signal: ctx.signal })) as CallToolResult);
          // One access per confined argument, nested so that every intent is recorded before the upstream is called, and each completed with its outcome.
          const through = (i: number): Promise<CallToolResult> => {
            const need = needs[i];
            if (need === undefined) return call();
            return audited(
              options.audit,
              cap,
              async (access) => {
                await admitNeed(access, cap, { ...need, ...tenant }, resolver, ctx.signal);
                return through(i + 1);
              },
              jsonBytes,
            );
          };
          return through(0);
        },
      );
      tools.push(tool);
    }
    return {
      name: config.name,
      tools,
      listing: (name, cap) => listingsOf(cap)?.get(name),
      prepare,
      onChanged: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
