import { execFileSync } from "node:child_process";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { httpClient, makeFixture, rawExchange, type Fixture } from "./support.ts";

/*
 * A gateway with small limits, talked to over raw sockets: slow headers,
 * slow bodies, huge headers and huge bodies are each cut off, and the
 * gateway keeps serving everyone else.
 */

const limits = { headersTimeoutMs: 300, requestTimeoutMs: 600, maxHeaderBytes: 4096, maxBodyBytes: 2048, keepAliveTimeoutMs: 30_000 };
const backlog = 77;
let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;
let token: string;

beforeAll(async () => {
  fixture = makeFixture({ listen: { limits, backlog } });
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
  token = gateway.issueToken("alice");
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  fixture.cleanup();
});

const initialize = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } } });

/** The head of a POST /mcp with a valid token, and any further header lines. */
const post = (...more: string[]) =>
  [
    "POST /mcp HTTP/1.1",
    `Host: ${new URL(http.url).host}`,
    `Authorization: Bearer ${token}`,
    "Content-Type: application/json",
    "Accept: application/json, text/event-stream",
    ...more,
    "",
    "",
  ].join("\r\n");

/** The gateway still opens a session and lists tools for a well-behaved client. */
async function stillServing(): Promise<void> {
  const { client } = await httpClient(http.url, token);
  try {
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(["list_files", "read_file"]);
  } finally {
    await client.close();
  }
}

describe("slow requests", () => {
  it("cuts off a connection that never sends a request", async () => {
    expect((await rawExchange(http.url, "")).status).toBe("HTTP/1.1 408 Request Timeout");
    await stillServing();
  });

  it("cuts off headers sent a byte at a time", async () => {
    expect((await rawExchange(http.url, `POST /mcp HTTP/1.1\r\nHost: ${new URL(http.url).host}\r\nX-Slow: `, "a")).status).toBe("HTTP/1.1 408 Request Timeout");
    await stillServing();
  });

  it("cuts off an authenticated body sent a byte at a time, however far it has come", async () => {
    const { status, answer } = await rawExchange(http.url, `${post("Content-Length: 2000")}{"jsonrpc":`, " ");
    expect(status).toBe("HTTP/1.1 408 Request Timeout");
    expect(answer).not.toContain("mcp-session-id");
    await stillServing();
  });

  it("cuts off a body that stops arriving", async () => {
    expect((await rawExchange(http.url, `${post("Content-Length: 2000")}{"jsonrpc":`)).status).toBe("HTTP/1.1 408 Request Timeout");
    await stillServing();
  });
});

describe("huge requests", () => {
  it("answers a body declared larger than maxBodyBytes with 413, without waiting for it", async () => {
    const { status, answer } = await rawExchange(http.url, post(`Content-Length: ${limits.maxBodyBytes + 1}`));
    expect(status).toBe("HTTP/1.1 413 Payload Too Large");
    expect(answer).toContain(`"the request body is larger than ${limits.maxBodyBytes} bytes"`);
    await stillServing();
  });

  it("answers a chunked body that grows past maxBodyBytes with 413", async () => {
    const chunk = " ".repeat(1500);
    const size = chunk.length.toString(16);
    const { status } = await rawExchange(http.url, `${post("Transfer-Encoding: chunked")}${size}\r\n${chunk}\r\n${size}\r\n${chunk}\r\n`, `${size}\r\n${chunk}\r\n`);
    expect(status).toBe("HTTP/1.1 413 Payload Too Large");
    await stillServing();
  });

  it("takes a body of exactly maxBodyBytes, and refuses one that is not JSON with a parse error", async () => {
    const send = (body: string) =>
      fetch(http.url, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream" }, body });
    const ok = await send(initialize.padEnd(limits.maxBodyBytes, " "));
    expect(ok.status).toBe(200);
    expect(ok.headers.get("mcp-session-id")).not.toBeNull();
    await ok.body?.cancel();
    const bad = await send("{nope");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: number } }).error.code).toBe(-32700);
  });

  it("answers headers larger than maxHeaderBytes with 431", async () => {
    expect((await rawExchange(http.url, post(`X-Pad: ${"a".repeat(limits.maxHeaderBytes)}`))).status).toBe("HTTP/1.1 431 Request Header Fields Too Large");
    await stillServing();
  });
});

describe("idle connections", () => {
  /** Sends `requests` one after another on one connection, `pause` ms apart once each answer has come, and returns the answers' heads. */
  function onOneConnection(requests: number, pause: number): Promise<string[]> {
    const { hostname, port } = new URL(http.url);
    const request = `GET /.well-known/oauth-protected-resource HTTP/1.1\r\nHost: ${new URL(http.url).host}\r\n\r\n`;
    return new Promise((resolve, reject) => {
      const heads: string[] = [];
      let buffered = "";
      const socket = connect(Number(port), hostname, () => socket.write(request));
      socket.setEncoding("latin1");
      socket.on("error", reject);
      socket.on("close", () => { resolve(heads); });
      socket.on("data", (chunk: string) => {
        buffered += chunk;
        // The answer is chunked: it ends with the empty chunk.
        if (!buffered.endsWith("\r\n0\r\n\r\n")) return;
        heads.push(buffered.slice(0, buffered.indexOf("\r\n\r\n")));
        buffered = "";
        if (heads.length === requests) socket.end();
        else void sleep(pause).then(() => socket.write(request));
      });
    });
  }

  it("keeps a connection idle longer than headersTimeoutMs and requestTimeoutMs open for the next request, and tells the client for how long", async () => {
    const heads = await onOneConnection(2, limits.requestTimeoutMs * 2);
    expect(heads.map((h) => h.split("\r\n")[0])).toEqual(["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]);
    expect(heads[0]).toMatch(/^Keep-Alive: timeout=30$/im);
  });

  it.skipIf(process.platform !== "linux")("listens with the configured backlog", () => {
    // ss shows a listening socket's backlog as its Send-Q.
    const line = execFileSync("ss", ["-ltnH", `sport = :${new URL(http.url).port}`], { encoding: "utf8" }).trim();
    expect(line.split(/\s+/)[2]).toBe(String(backlog));
  });
});
