import { once } from "node:events";
import { Agent, createServer, request } from "node:http";
import { createMint } from "../src/index.ts";
import { createHttpClient } from "../src/resources/http/client.ts";
import { measureAsync, report } from "./harness.ts";

const ITER = 2_000;
const BODY = Buffer.alloc(1024, 120);

/** A raw node:http GET over a keep-alive agent: what the confined client is built on, for reference. */
function rawGet(agent: Agent, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/v1/item", agent }, (res) => {
      let size = 0;
      res.on("data", (c: Buffer) => (size += c.length));
      res.on("end", () => {
        resolve(size);
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * A confined HTTP GET of 1 KiB from a local keep-alive server against a
 * direct `fetch` of the same URL, in the same run. The confined rows are by
 * IP literal (no resolution) and by name through an in-memory resolver.
 */
export async function runHttpBench(): Promise<void> {
  const server = createServer((_req, res) => {
    res.end(BODY);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("bench server did not bind a TCP port");
  const port = address.port;
  const url = `http://127.0.0.1:${port}/v1/item`;
  const namedUrl = `http://api.bench.test:${port}/v1/item`;

  const grant = {
    http: [
      { origin: `http://127.0.0.1:${port}`, methods: ["GET" as const], pathPrefix: "/v1/" },
      { origin: `http://api.bench.test:${port}`, methods: ["GET" as const], pathPrefix: "/v1/", allowPrivateNetwork: true },
    ],
  };
  const cap = createMint({ issuer: "bench", policy: () => grant }).issue({ id: "bench" });
  const answer = Object.freeze(["127.0.0.1"]);
  const client = createHttpClient({ resolver: () => Promise.resolve(answer) });
  const agent = new Agent({ keepAlive: true });

  try {
    const baseline = await measureAsync("direct fetch GET 1 KiB (baseline)", async () => (await fetch(url)).arrayBuffer(), ITER);
    const rows = [
      await measureAsync("confined GET, IP literal", () => client.request(cap, url), ITER),
      await measureAsync("confined GET, name via resolver", () => client.request(cap, namedUrl), ITER),
      await measureAsync("raw node:http GET, keep-alive (reference)", () => rawGet(agent, port), ITER),
    ];
    report("http: confined GET to a local server vs direct fetch", baseline, rows);
  } finally {
    client.close();
    agent.destroy();
    server.closeAllConnections();
    server.close();
  }
}
