/**
 * The explorer on its own HTTP server, for `agentcap audit explore`. It
 * answers only to its own address: a Host or Origin naming anything else
 * (a DNS rebinding page, another site) gets 403 before anything is read.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { EXPLORE_PATH, type Explorer } from "./explorer.js";
import { listenOn } from "./listening.js";

/** A listening explorer. */
export interface ListeningExplorer {
  /** The page, such as http://127.0.0.1:4100/explore/. */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `explorer` on `host:port` (port 0 picks a free one); resolves once listening. */
export async function listenExplorer(explorer: Explorer, listen: { readonly host: string; readonly port: number }, log: (line: string) => void = () => undefined): Promise<ListeningExplorer> {
  let origin = "";
  let hosts = new Set<string>();
  const server = createServer((req, res) => {
    const url = URL.parse(req.url ?? "/", origin);
    const refuse = (status: number, message: string) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ error: message }));
    if (url === null || url.origin !== origin) return refuse(400, "malformed request target");
    if (!hosts.has(req.headers.host ?? "")) return refuse(403, "Host not allowed");
    if (req.headers.origin !== undefined && req.headers.origin !== origin) return refuse(403, "Origin not allowed");
    if (url.pathname === "/") return res.writeHead(308, { location: `${EXPLORE_PATH}/` }).end();
    if (url.pathname !== EXPLORE_PATH && !url.pathname.startsWith(`${EXPLORE_PATH}/`)) return refuse(404, "not found");
    explorer.handle(req, res, url).catch((e: unknown) => {
      log(`500 for ${req.method ?? "?"} ${url.pathname}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      if (!res.headersSent) refuse(500, "internal error");
      else res.end();
    });
  });
  await listenOn(server, listen, "explorer");
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  origin = `http://${host}:${String(address.port)}`;
  hosts = new Set([`${host}:${String(address.port)}`, ...(["127.0.0.1", "[::1]"].includes(host) ? [`localhost:${String(address.port)}`] : [])]);
  return {
    url: `${origin}${EXPLORE_PATH}/`,
    close: async () => {
      explorer.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    },
  };
}
