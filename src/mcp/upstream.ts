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
import { z } from "zod";
import { canonicalHttpUrl, defined, isIpLiteral } from "../kernel/internal.js";
import { authorize, denialError, InvalidInput, type AuditSink, type Capability, type FsRequest, type HttpRequest } from "../kernel/index.js";
import { lexicalPath, realPath } from "../resources/fs/internal.js";
import { systemResolver, type Resolver } from "../resources/http/index.js";
import { authorizeUrl } from "../resources/http/internal.js";
import { audited, jsonBytes, type Access } from "../resources/internal.js";
import { defineTool, type AnyTool, type JsonSchema } from "../tools/index.js";
import type { ArgumentKind, UpstreamConfig } from "./config.js";
import { Client, getDefaultEnvironment, StdioClientTransport, StreamableHTTPClientTransport, type CallToolResult, type Transport } from "./sdk.js";

/** Separates an upstream's name from its tool's name in the exposed name. */
export const UPSTREAM_SEPARATOR = "__";

/** An upstream behind the guard: its exposed tools, the schemas to show for them, and how to disconnect. */
export interface GuardedUpstream {
  readonly name: string;
  readonly tools: readonly AnyTool[];
  /** The upstream's own input schema for each exposed tool name, shown to clients in place of the guard's loose one. */
  readonly schemas: ReadonlyMap<string, JsonSchema>;
  close(): Promise<void>;
}

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
 */
export async function guardUpstream(config: UpstreamConfig, options: GuardOptions = {}): Promise<GuardedUpstream> {
  const transport = options.transport ?? upstreamTransport(config);
  const resolver = options.resolver ?? systemResolver;
  const client = new Client({ name: "agentcap-gateway", version: "0.1.0" });
  await client.connect(transport);
  try {
    const offered = new Map((await client.listTools()).tools.map((t) => [t.name, t]));
    const tools: AnyTool[] = [];
    const schemas = new Map<string, JsonSchema>();
    for (const [upstreamName, constraints] of Object.entries(config.tools)) {
      const listed = offered.get(upstreamName);
      if (listed === undefined) {
        throw new InvalidInput(`upstream ${config.name} has no tool named ${upstreamName}; it offers ${[...offered.keys()].join(", ") || "no tools"}`);
      }
      const exposed = `${config.name}${UPSTREAM_SEPARATOR}${upstreamName}`;
      const tool = defineTool(
        {
          name: exposed,
          description: `${listed.description ?? upstreamName} (via agentcap from upstream ${config.name})`,
          // The upstream validates the rest itself; the constrained arguments are checked in needs.
          input: z.looseObject({}),
          needs: (input) => constrainArguments(exposed, constraints, input, config).needs,
        },
        async (input, cap, ctx): Promise<CallToolResult> => {
          // Canonicalized again and authorized on the narrowed capability, as a resource does: a link swapped since needs ran is refused here.
          const { needs, args } = constrainArguments(exposed, constraints, input, config);
          const tenant = ctx.tenant === null ? {} : { tenant: ctx.tenant };
          const call = async () => (await client.callTool({ name: upstreamName, arguments: args }, undefined, { signal: ctx.signal })) as CallToolResult;
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
      schemas.set(exposed, listed.inputSchema);
    }
    return { name: config.name, tools, schemas, close: () => client.close() };
  } catch (e) {
    await client.close();
    throw e;
  }
}
