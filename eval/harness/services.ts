import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Resolver } from "agentcap/http";

/*
 * The suites' stand-ins for other hosts: small HTTP services on loopback
 * addresses of their own (127.0.0.2 and up), reached by name through a
 * resolver that knows only them. Nothing leaves the machine.
 */

export interface Service {
  readonly host: string;
  readonly address: string;
  /** `http://<host>:<port>`, as grants name it. */
  readonly origin: string;
  close(): Promise<void>;
}

export interface Received {
  readonly method: string;
  readonly url: string;
  readonly body: string;
}

export type Handler = (request: Received, response: ServerResponse) => void;

/** Starts `handler` on `address` (a 127.0.0.x address), to be reached as `host`. */
export async function startService(host: string, address: string, handler: Handler): Promise<Service> {
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      handler({ method: req.method ?? "GET", url: req.url ?? "/", body: Buffer.concat(chunks).toString("utf8") }, res);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, address, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    host,
    address,
    origin: `http://${host}:${String(port)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** A resolver that answers for the given services only. */
export function serviceResolver(services: readonly Service[]): Resolver {
  const names = new Map(services.map((s) => [s.host, s.address]));
  return (hostname) => {
    const address = names.get(hostname);
    return Promise.resolve(address === undefined ? [] : [address]);
  };
}

/** Answers with JSON. */
export function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

/**
 * A web site of HTML pages, as `page(path)` finds them (undefined: 404), with
 * an open redirect at `redirectPath?to=<url>`, as link shorteners and intranet
 * gateways have: the suites use it to send an agent somewhere else.
 */
export function pageSite(origin: string, redirectPath: string, page: (path: string) => string | undefined): Handler {
  return (req, res) => {
    const url = new URL(req.url, origin);
    if (url.pathname === redirectPath) {
      res.writeHead(302, { location: new URL(url.searchParams.get("to") ?? "/").href });
      res.end();
      return;
    }
    const html = page(url.pathname);
    if (html === undefined) {
      json(res, 404, { error: "not found" });
      return;
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end(html);
  };
}

/** The attacker's collector: a service that keeps every request it receives. */
export interface Collector {
  readonly received: Received[];
  /** Whether any request carried `secret`, in its URL (decoded) or body. */
  got(secret: string): boolean;
  handler: Handler;
}

export function collector(): Collector {
  const received: Received[] = [];
  return {
    received,
    got: (secret) => received.some((r) => safeDecode(r.url).includes(secret) || r.body.includes(secret)),
    handler: (req, res) => {
      received.push(req);
      json(res, 200, { ok: true });
    },
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replaceAll("+", " "));
  } catch {
    return s;
  }
}
