import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapabilityDenied, InvalidInput } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { createHttpClient } from "../../src/resources/http/client.ts";
import { fetchTool } from "../../src/tools/builtin/fetch.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink } from "./memory-sink.ts";

let server: Server;
let origin = "";
const hits: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    hits.push(`${req.method ?? ""} ${req.url ?? ""}`);
    if (req.url === "/api/moved") {
      res.writeHead(302, { location: "/api/items" }).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" }).end(`you asked for ${req.url ?? ""}`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
});
afterAll(() => {
  server.close();
});

function setup() {
  const http = createHttpClient();
  const mint = createMint({ issuer: "t", policy: () => ({ tools: ["fetch_url"], http: [{ origin, methods: ["GET"], pathPrefix: "/api/" }] }) });
  const sink = memorySink();
  return { cap: mint.issue({ id: "dev" }), sink, dispatcher: createDispatcher({ tools: [fetchTool(http)], audit: sink }) };
}

describe("fetch_url", () => {
  it("fetches a granted URL and returns the body as text", async () => {
    const { dispatcher, cap } = setup();
    await expect(dispatcher.call("fetch_url", { url: `${origin}/api/items?page=2` }, cap)).resolves.toEqual({
      status: 200,
      url: `${origin}/api/items?page=2`,
      contentType: "text/plain",
      body: "you asked for /api/items?page=2",
    });
  });

  it("denies what the caller does not hold before any request leaves", async () => {
    const { dispatcher, cap, sink } = setup();
    hits.length = 0;
    await expect(dispatcher.call("fetch_url", { url: `${origin}/admin` }, cap)).rejects.toThrow(CapabilityDenied);
    await expect(dispatcher.call("fetch_url", { url: `${origin}/api/items`, method: "POST", body: "x" }, cap)).rejects.toThrow(CapabilityDenied);
    await expect(dispatcher.call("fetch_url", { url: `${origin}/api/../admin` }, cap)).rejects.toThrow(CapabilityDenied);
    expect(hits).toEqual([]);
    expect(sink.toolEvents().map((e) => e.request)).toMatchObject([{ action: "http.request", url: `${origin}/admin` }, { method: "POST" }, { url: `${origin}/api/../admin` }]);
  });

  it("holds only the URL it was called for: a redirect elsewhere is denied, even inside the caller's grant", async () => {
    const { dispatcher, cap } = setup();
    await expect(dispatcher.call("fetch_url", { url: `${origin}/api/moved` }, cap)).rejects.toThrow(/does not grant GET .*\/api\/items/);
  });

  it("refuses a URL that is not http(s) as invalid input", async () => {
    const { dispatcher, cap } = setup();
    await expect(dispatcher.call("fetch_url", { url: "file:///etc/passwd" }, cap)).rejects.toThrow(InvalidInput);
  });
});
