/**
 * Per-principal connections to an upstream MCP server over Streamable HTTP:
 * each principal's calls go over a client of its own, whose every HTTP
 * request carries that principal's credential for the upstream's origin,
 * looked up when the request is sent (from the vault, or exchanged, for the
 * capability of the call in progress). The upstream thus sees each user as themselves, in
 * an MCP session of their own; nothing the model or the tool sees holds the
 * credential.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { InvalidInput, type Capability, type CredentialSource } from "../kernel/index.js";
import { liveDenial } from "../kernel/internal.js";
import { Client, StreamableHTTPClientTransport, type McpTool } from "./sdk.js";

/** Principals with a connection open at once; the least recently used one is closed beyond it. */
const MAX_CONNECTIONS = 256;
/** Recent callers remembered per principal, for the requests of its connection made outside a call. */
const RECENT_CALLERS = 4;

/** The clients of one upstream, by principal. */
export interface PrincipalClients {
  /** Runs `work` with the client of `cap`'s principal (connected on first use), its requests authenticated for `cap`. */
  run<T>(cap: Capability, work: (client: Client) => Promise<T>): Promise<T>;
  /** Counts `cap` as a recent caller of its principal's connection (one of those whose credential its requests outside a call may carry). */
  touch(cap: Capability): void;
  close(): Promise<void>;
}

/** What the owner of the clients hears of them. */
export interface PrincipalClientHooks {
  /** The upstream told `principal`'s connection that its tool list changed, and this is the new list. */
  readonly toolsChanged?: (principal: string, tools: readonly McpTool[]) => void;
  /** `principal`'s connection was closed (the least recently used one, beyond the bound, or a failed one). */
  readonly forgotten?: (principal: string) => void;
}

/** Opens per-principal clients of the upstream at `url`, their credentials from `credentials`. */
export function principalClients(url: string, credentials: CredentialSource, hooks: PrincipalClientHooks = {}): PrincipalClients {
  const origin = new URL(url).origin;
  const calling = new AsyncLocalStorage<Capability>();
  const clients = new Map<string, Promise<Client>>();
  /** The principal's callers, most recent first: requests outside a call are made for the most recent one still live. */
  const callers = new Map<string, Capability[]>();
  const called = (principal: string, cap: Capability) => {
    const recent = (callers.get(principal) ?? []).filter((c) => c !== cap);
    callers.set(principal, [cap, ...recent].slice(0, RECENT_CALLERS));
  };
  /** The credential of the principal's most recent live caller that has one to give (a session without a token to exchange, say, has none). */
  const backgroundAuthorization = async (principal: string): Promise<string | null> => {
    const recent = callers.get(principal) ?? [];
    const live = recent.filter((c) => liveDenial(c) === null);
    let refusal: unknown = new InvalidInput(`no caller of principal ${principal} is left to authenticate the upstream connection's requests as`);
    for (const cap of live.length > 0 ? live : recent.slice(0, 1)) {
      try {
        return await credentials.authorization(cap, origin);
      } catch (e) {
        refusal = e;
      }
    }
    throw refusal;
  };
  const connect = (principal: string): Promise<Client> => {
    /*
     * A request of a call carries the caller's credential. Requests outside a call (the initialize, the stream of
     * server messages, the listing that follows a change announced on it, closing) carry that of the principal's most
     * recent live caller that has one, not the one that happened to open the connection, whose session may have ended.
     */
    const authenticated = async (target: string | URL, init?: RequestInit): Promise<Response> => {
      const headers = new Headers(init?.headers);
      const cap = calling.getStore();
      const authorization = cap === undefined ? await backgroundAuthorization(principal) : await credentials.authorization(cap, origin);
      if (authorization === null) headers.delete("authorization");
      else headers.set("authorization", authorization);
      return fetch(target, { ...init, headers });
    };
    const onChanged = hooks.toolsChanged;
    const client = new Client(
      { name: "agentcap-gateway", version: "0.1.0" },
      // The upstream's announcement of a change to this caller's list: the client lists the tools again, as this caller.
      onChanged === undefined
        ? {}
        : {
            listChanged: {
              tools: {
                onChanged: (error, offered) => {
                  if (error === null && offered !== null) onChanged(principal, offered);
                },
              },
            },
          },
    );
    return client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: authenticated })).then(() => client);
  };
  const forget = async (principal: string, pending: Promise<Client>) => {
    if (clients.get(principal) === pending) {
      clients.delete(principal);
      callers.delete(principal);
      hooks.forgotten?.(principal);
    }
    await pending.then((c) => c.close()).catch(() => undefined);
  };
  return {
    run: async (cap, work) => {
      const principal = cap.mint.principal;
      called(principal, cap);
      let pending = clients.get(principal);
      if (pending === undefined) {
        // Outside the call's context: the connection's own requests, and the stream it opens, are no call's.
        pending = calling.exit(() => connect(principal));
        const opened = pending;
        // A failed connection is not kept: the next call tries again.
        opened.catch(() => void forget(principal, opened));
        const oldest = clients.size >= MAX_CONNECTIONS ? [...clients][0] : undefined;
        if (oldest !== undefined) void forget(...oldest);
      } else {
        clients.delete(principal);
      }
      clients.set(principal, pending);
      const client = await pending;
      return calling.run(cap, () => work(client));
    },
    touch: (cap) => {
      if (clients.has(cap.mint.principal)) called(cap.mint.principal, cap);
    },
    close: async () => {
      const open = [...clients];
      clients.clear();
      await Promise.all(open.map(([p, c]) => forget(p, c)));
    },
  };
}
