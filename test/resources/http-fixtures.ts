import { once } from "node:events";
import { Agent as HttpAgent, createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Agent as HttpsAgent, createServer as createTlsServer } from "node:https";
import { vi } from "vitest";
import { createMint, type Capability, type FullReach, type Grant } from "../../src/index.ts";
import type { Resolver } from "../../src/resources/http/client.ts";

/*
 * Local stand-ins for the outside world. Servers listen on 127.0.0.x (all
 * loopback on Linux) and share one port, so several "hosts" differ only by
 * address, as real ones do. A resolver maps made-up names to those
 * addresses, and a guard on Node's agents maps made-up public addresses to
 * local servers and refuses to connect anywhere else: no test can reach the
 * internet, even by mistake.
 */

/** One request as a test server saw it. */
export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
  /** Whether the connection that carried the request is still open. */
  readonly connectionOpen: () => boolean;
}

export interface TestServer {
  readonly address: string;
  readonly port: number;
  /** TCP connections accepted so far. */
  readonly connections: () => number;
  readonly requests: Seen[];
}

function respond(req: IncomingMessage, res: ServerResponse, body: string): void {
  const url = new URL(req.url ?? "/", "http://x");
  const path = url.pathname;
  const param = (name: string) => url.searchParams.get(name) ?? "";
  if (path.endsWith("/redirect")) {
    res.writeHead(Number(param("status") || "302"), { location: param("to") });
    res.end("moved");
  } else if (path.endsWith("/loop")) {
    res.writeHead(302, { location: path });
    res.end();
  } else if (path.endsWith("/echo")) {
    res.setHeader("content-type", "application/json");
    res.setHeader("set-cookie", ["a=1", "b=2"]);
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  } else if (path.endsWith("/big")) {
    const n = Number(param("bytes"));
    res.writeHead(200, { "content-length": n });
    res.end(Buffer.alloc(n, 97));
  } else if (path.endsWith("/chunked")) {
    // No Content-Length: the limit must be enforced while reading.
    const n = Number(param("bytes"));
    res.writeHead(200);
    for (let sent = 0; sent < n; sent += 1024) res.write(Buffer.alloc(Math.min(1024, n - sent), 98));
    res.end();
  } else if (path.endsWith("/slow")) {
    // Never answers.
  } else if (path.endsWith("/trickle")) {
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("first part, then nothing");
  } else {
    res.end(req.method === "HEAD" ? undefined : `hello from ${req.socket.localAddress ?? "?"}${req.url ?? ""}`);
  }
}

function track(server: Server, address: string, port: number): TestServer {
  let connections = 0;
  const requests: Seen[] = [];
  server.on("connection", () => {
    connections++;
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const socket = req.socket;
      requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body, connectionOpen: () => !socket.destroyed });
      respond(req, res, body);
    });
  });
  return { address, port, connections: () => connections, requests };
}

async function listen(server: Server, address: string, port: number): Promise<number> {
  server.listen(port, address);
  await once(server, "listening");
  const bound = server.address();
  if (bound === null || typeof bound === "string") throw new Error("server did not bind a TCP port");
  return bound.port;
}

/** Servers on each of `addresses`, all on one port; `tls` makes them HTTPS with that key and certificate. */
export async function startServers(
  addresses: readonly string[],
  tls?: { readonly key: string; readonly cert: string },
): Promise<{ servers: TestServer[]; port: number; close: () => Promise<void> }> {
  const make = (): Server => (tls === undefined ? createServer() : createTlsServer(tls));
  for (let attempt = 0; ; attempt++) {
    const raw: Server[] = [];
    try {
      let port = 0;
      const servers: TestServer[] = [];
      for (const address of addresses) {
        const server = make();
        raw.push(server);
        port = await listen(server, address, port);
        servers.push(track(server, address, port));
      }
      const close = async () => {
        for (const s of raw) s.closeAllConnections();
        await Promise.all(raw.map((s) => new Promise((r) => s.close(r))));
      };
      return { servers, port, close };
    } catch (e) {
      // Another process may hold the port on one of the addresses: try another port.
      for (const s of raw) s.close();
      if (attempt >= 5) throw e;
    }
  }
}

/** A resolver over a fixed table; a function entry answers differently call by call. Counts its calls. */
export function tableResolver(table: Readonly<Record<string, readonly string[] | ((call: number) => readonly string[])>>): Resolver & {
  calls: string[];
} {
  const calls: string[] = [];
  const resolver = (hostname: string): Promise<readonly string[]> => {
    calls.push(hostname);
    const entry = Object.hasOwn(table, hostname) ? table[hostname] : undefined;
    if (entry === undefined) return Promise.reject(new Error(`getaddrinfo ENOTFOUND ${hostname}`));
    return Promise.resolve(typeof entry === "function" ? entry(calls.filter((c) => c === hostname).length) : entry);
  };
  return Object.assign(resolver, { calls });
}

type CreateConnection = (this: HttpAgent, options: { host?: string | null }, callback?: unknown) => unknown;

/**
 * Routes connections to made-up public addresses (`standIns`: public IP →
 * local address) and refuses any other non-loopback address. Records every
 * address a connection was opened to, before any rewriting.
 */
export function installNetworkGuard(standIns: Readonly<Record<string, string>>): { targets: string[]; restore: () => void } {
  const targets: string[] = [];
  const spies = [HttpAgent.prototype, HttpsAgent.prototype].map((proto) => {
    const original = Reflect.get(proto, "createConnection") as CreateConnection;
    return vi.spyOn(proto, "createConnection").mockImplementation(function (this: HttpAgent, options, callback) {
      const host = options.host ?? "";
      targets.push(host);
      const local = Object.hasOwn(standIns, host) ? standIns[host] : host.startsWith("127.") || host === "::1" ? host : undefined;
      if (local === undefined) throw new Error(`test tried to connect to ${host}, outside this machine`);
      return original.call(this, { ...options, host: local }, callback) as ReturnType<HttpAgent["createConnection"]>;
    });
  });
  return {
    targets,
    restore: () => {
      for (const s of spies) s.mockRestore();
    },
  };
}

/** A root capability holding exactly `grant`. */
export function capWith(grant: Grant): Capability<FullReach> {
  return createMint({ issuer: "http-tests", policy: () => grant }).issue({ id: "agent" });
}

/** The body as text. */
export const text = (body: Uint8Array): string => new TextDecoder().decode(body);
