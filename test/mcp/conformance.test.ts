import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { makeFixture, type Fixture } from "./support.ts";

/*
 * The MCP conformance suite (@modelcontextprotocol/conformance) against the
 * gateway, for the scenarios that apply to a server of tools only. The
 * suite's client sends no credentials, so it talks to the gateway through a
 * small proxy on 127.0.0.1 that adds alice's bearer token and passes
 * everything else (Host and Origin included) through unchanged; the
 * gateway answers to the proxy's address as it would to a reverse proxy's
 * name (listen.allowedHosts).
 *
 * Scenarios left out, and why, are listed in the README; the first test
 * checks that its two lists hold every server scenario the suite has.
 */
const APPLY = ["server-initialize", "ping", "tools-list", "server-sse-multiple-streams", "dns-rebinding-protection"];

/** The scenario names in the README's block after `<!-- conformance: name -->`. */
function readmeScenarios(name: string): string[] {
  const readme = readFileSync(path.resolve("README.md"), "utf8");
  const at = readme.indexOf(`<!-- conformance: ${name} -->`);
  const block = readme.slice(at, readme.indexOf("\n\n", readme.indexOf("\n", at) + 1));
  return [...block.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1] as string);
}

const bin = path.resolve("node_modules/@modelcontextprotocol/conformance/dist/index.js");
let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;
let proxy: Server;
let url: string;

beforeAll(async () => {
  proxy = createServer();
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const port = (proxy.address() as AddressInfo).port;
  fixture = makeFixture({ listen: { allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`] } });
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
  const token = gateway.issueToken("alice");
  const target = new URL(http.url);
  proxy.on("request", (req, res) => {
    const upstream = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: { ...req.headers, authorization: `Bearer ${token}` } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  url = `http://127.0.0.1:${port}/mcp`;
});

afterAll(async () => {
  proxy.closeAllConnections();
  await new Promise<void>((resolve) => proxy.close(() => { resolve(); }));
  await http.close();
  await gateway.close();
  fixture.cleanup();
});

describe("the MCP conformance suite", () => {
  it("README lists every server scenario of the installed suite: those run here as passing, the rest as not applying", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [bin, "list", "--server"]);
    const listed = [...stdout.matchAll(/^\s*- ([a-z0-9-]+) \[/gm)].map((m) => m[1] as string);
    expect(listed.length).toBeGreaterThan(20);
    const pass = readmeScenarios("pass");
    const notApplicable = readmeScenarios("not applicable");
    expect(pass).toEqual(APPLY);
    expect([...pass, ...notApplicable].sort()).toEqual([...listed].sort());
  });


  it.each(APPLY)("passes %s", async (scenario) => {
    const run = await promisify(execFile)(process.execPath, [bin, "server", "--url", url, "--scenario", scenario], { timeout: 60_000 }).catch((e: unknown) => e as { stdout: string; code: number });
    const out = run.stdout;
    expect(out, out).toMatch(/Passed: [1-9]\d*\/\d+, 0 failed/);
    expect(out).not.toMatch(/FAILURE/);
  }, 90_000);
});
