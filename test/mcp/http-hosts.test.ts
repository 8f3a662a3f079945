import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { parseHost, requestSources } from "../../src/mcp/http-hosts.ts";
import { makeFixture, rawExchange, type Fixture } from "./support.ts";

/*
 * Host and Origin checks against DNS rebinding and cross-site requests: a
 * gateway on 127.0.0.1 that also answers to a reverse proxy's name and lets
 * one web app call it. Requests carry a valid token, so a refusal is the
 * Host or Origin check's, not authentication's.
 */

let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;
let token: string;
let port: string;
const logged: string[] = [];

beforeAll(async () => {
  fixture = makeFixture({ listen: { allowedHosts: ["mcp.example.com"], allowedOrigins: ["https://app.example.com"] } });
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: (line) => logged.push(line) });
  token = gateway.issueToken("alice");
  port = new URL(http.url).port;
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  fixture.cleanup();
});

/** POSTs an initialize to /mcp with a valid token and the given Host and Origin; node:http lets a test set Host. */
function initialize(host: string, origin?: string): Promise<{ status: number; session: boolean; body: string }> {
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } } });
  return new Promise((resolve, reject) => {
    const req = request(
      http.url,
      {
        method: "POST",
        headers: {
          host,
          ...(origin === undefined ? {} : { origin }),
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => { resolve({ status: res.statusCode ?? 0, session: res.headers["mcp-session-id"] !== undefined, body: text }); });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe("Host", () => {
  it("answers the listen address, its loopback equivalents and the configured names", async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LocalHost:${port}`, `[::1]:${port}`, "mcp.example.com", "mcp.example.com:8443"]) {
      const res = await initialize(host);
      expect(res.status, host).toBe(200);
      expect(res.session, host).toBe(true);
    }
  });

  it.each([
    ["a name an attacker rebound to loopback", `evil.example:${port}`],
    ["the right address on another port", `127.0.0.1:${Number(port) + 1}`],
    ["localhost without the port", "localhost"],
    ["a subdomain of a configured name", "x.mcp.example.com"],
    ["userinfo before the address", `evil@127.0.0.1:${port}`],
    ["a path", `127.0.0.1:${port}/x`],
  ])("refuses %s with 403 before anything else", async (_name, host) => {
    const res = await initialize(host);
    expect(res.status).toBe(403);
    expect(res.session).toBe(false);
    expect(JSON.parse(res.body)).toEqual({ jsonrpc: "2.0", error: { code: -32000, message: "Forbidden: Host not allowed" }, id: null });
  });

  it("refuses a request without Host, and one whose absolute-form target names another host", async () => {
    const bare = await rawExchange(http.url, "GET /.well-known/oauth-protected-resource HTTP/1.0\r\n\r\n");
    expect(bare.status).toBe("HTTP/1.1 403 Forbidden");
    const absolute = await rawExchange(http.url, `GET http://evil.example/.well-known/oauth-protected-resource HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    expect(absolute.status).toBe("HTTP/1.1 403 Forbidden");
    const own = await rawExchange(http.url, `GET http://127.0.0.1:${port}/.well-known/oauth-protected-resource HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    expect(own.status).toBe("HTTP/1.1 200 OK");
    expect(logged.some((line) => line.includes('Host "evil.example" is not allowed'))).toBe(true);
  });
});

describe("Origin", () => {
  it("refuses a page of another site, even with a valid token, and opens no session", async () => {
    const res = await initialize(`127.0.0.1:${port}`, "http://evil.example");
    expect(res.status).toBe(403);
    expect(res.session).toBe(false);
    expect(JSON.parse(res.body)).toEqual({ jsonrpc: "2.0", error: { code: -32000, message: "Forbidden: Origin not allowed" }, id: null });
  });

  it.each([
    ["an opaque origin", "null"],
    ["another port of the same address", `http://127.0.0.1:${Number(port) + 1}`],
    ["a name ending like an allowed origin", "https://app.example.com.evil.example"],
    ["an allowed origin's other scheme", "http://app.example.com"],
    ["a rebound name on the right port", `http://evil.example:${port}`],
    ["something that is not an origin", "https://app.example.com/path"],
  ])("refuses %s", async (_name, origin) => {
    expect((await initialize(`127.0.0.1:${port}`, origin)).status).toBe(403);
  });

  it("takes the gateway's own hosts and the configured origins", async () => {
    for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`, "https://mcp.example.com", "https://app.example.com"]) {
      const res = await initialize(`127.0.0.1:${port}`, origin);
      expect(res.status, origin).toBe(200);
    }
  });

  it("checks every route, not only /mcp", async () => {
    const meta = await rawExchange(http.url, `GET /.well-known/oauth-protected-resource HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: http://evil.example\r\nConnection: close\r\n\r\n`);
    expect(meta.status).toBe("HTTP/1.1 403 Forbidden");
    const revoke = await rawExchange(http.url, `POST /revoke HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: http://evil.example\r\nAuthorization: Bearer ${token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    expect(revoke.status).toBe("HTTP/1.1 403 Forbidden");
    expect((await initialize(`127.0.0.1:${port}`)).status).toBe(200);
  });
});

describe("hosts a gateway answers to by default", () => {
  const none = { allowedHosts: [], allowedOrigins: [] };

  it("parses Host values as URLs do, and refuses anything else", () => {
    expect(parseHost("Example.COM:8080")).toEqual({ hostname: "example.com", port: "8080" });
    expect(parseHost("example.com:80")).toEqual({ hostname: "example.com", port: "80" });
    expect(parseHost("example.com")).toEqual({ hostname: "example.com", port: null });
    expect(parseHost("[::1]:3333")).toEqual({ hostname: "[::1]", port: "3333" });
    for (const bad of ["", "a b", "a/b", "u@h", "h:", "h:x", "::1", "h%2f", "h?x", "h#x", "h\\x"]) expect(parseHost(bad), bad).toBeNull();
  });

  it("on loopback: the address, localhost, 127.0.0.1 and [::1], on the bound port only", () => {
    const s = requestSources({ address: "127.0.0.1", family: "IPv4", port: 3333 }, "127.0.0.1", none);
    for (const ok of ["127.0.0.1:3333", "localhost:3333", "[::1]:3333"]) expect(s.hostAllowed(ok), ok).toBe(true);
    for (const bad of ["127.0.0.1:3334", "127.0.0.1", "example.com:3333", undefined]) expect(s.hostAllowed(bad), String(bad)).toBe(false);
  });

  it("on a named address: the configured name and the bound address, not localhost", () => {
    const s = requestSources({ address: "10.0.0.5", family: "IPv4", port: 3333 }, "mcp.internal", none);
    expect(s.hostAllowed("mcp.internal:3333")).toBe(true);
    expect(s.hostAllowed("10.0.0.5:3333")).toBe(true);
    expect(s.hostAllowed("localhost:3333")).toBe(false);
    expect(s.originAllowed("http://mcp.internal:3333")).toBe(true);
    expect(s.originAllowed("http://localhost:3333")).toBe(false);
  });

  it("on every interface: the machine's own addresses and localhost", () => {
    const s = requestSources({ address: "0.0.0.0", family: "IPv4", port: 3333 }, "0.0.0.0", none);
    expect(s.hostAllowed("127.0.0.1:3333")).toBe(true);
    expect(s.hostAllowed("localhost:3333")).toBe(true);
    expect(s.hostAllowed("evil.example:3333")).toBe(false);
  });
});
