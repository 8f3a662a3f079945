/**
 * Per-principal connections to an upstream MCP server over Streamable HTTP:
 * each principal's calls go over a client of its own, whose every HTTP
 * request carries that principal's credential for the upstream's origin,
 * looked up when the request is sent (from the vault, for the capability of
 * the call in progress). The upstream thus sees each user as themselves, in
 * an MCP session of their own; nothing the model or the tool sees holds the
 * credential.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Capability, CredentialSource } from "../kernel/index.js";
import { Client, StreamableHTTPClientTransport } from "./sdk.js";

/** Principals with a connection open at once; the least recently used one is closed beyond it. */
const MAX_CONNECTIONS = 256;

/** The clients of one upstream, by principal. */
export interface PrincipalClients {
  /** Runs `work` with the client of `cap`'s principal (connected on first use), its requests authenticated for `cap`. */
  run<T>(cap: Capability, work: (client: Client) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Opens per-principal clients of the upstream at `url`, their credentials from `credentials`. */
export function principalClients(url: string, credentials: CredentialSource): PrincipalClients {
  const origin = new URL(url).origin;
  const calling = new AsyncLocalStorage<Capability>();
  const clients = new Map<string, Promise<Client>>();
  const connect = (opener: Capability): Promise<Client> => {
    // Requests outside a call (the stream of server messages, closing) are made for the capability that opened the connection.
    const authenticated = async (target: string | URL, init?: RequestInit): Promise<Response> => {
      const headers = new Headers(init?.headers);
      const authorization = await credentials.authorization(calling.getStore() ?? opener, origin);
      if (authorization === null) headers.delete("authorization");
      else headers.set("authorization", authorization);
      return fetch(target, { ...init, headers });
    };
    const client = new Client({ name: "agentcap-gateway", version: "0.1.0" });
    return client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: authenticated })).then(() => client);
  };
  const forget = async (principal: string, pending: Promise<Client>) => {
    if (clients.get(principal) === pending) clients.delete(principal);
    await pending.then((c) => c.close()).catch(() => undefined);
  };
  return {
    run: async (cap, work) => {
      const principal = cap.mint.principal;
      let pending = clients.get(principal);
      if (pending === undefined) {
        pending = calling.run(cap, () => connect(cap));
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
    close: async () => {
      const open = [...clients];
      clients.clear();
      await Promise.all(open.map(([p, c]) => forget(p, c)));
    },
  };
}
