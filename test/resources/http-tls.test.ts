import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Capability } from "../../src/index.ts";
import { createHttpClient, type HttpClient } from "../../src/resources/http/client.ts";
import { HttpRequestFailed } from "../../src/index.ts";
import { capWith, installNetworkGuard, startServers, tableResolver, text, type TestServer } from "./http-fixtures.ts";

/*
 * HTTPS: the socket goes to the checked address, while the TLS server name
 * and certificate check use the URL's host name. A throw-away self-signed
 * certificate for api.example.test is made with openssl for the run.
 */

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;

describe.skipIf(!hasOpenssl)("confined HTTP client over TLS", () => {
  let dir = "";
  let cert = "";
  let P = 0;
  let server: TestServer;
  let closeServers: () => Promise<void>;
  let guard: ReturnType<typeof installNetworkGuard>;
  let client: HttpClient;
  let cap: Capability<{ readonly http: "GET" }>;
  const resolver = tableResolver({ "api.example.test": ["127.0.0.2"], "other.example.test": ["127.0.0.2"] });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "agentcap-tls-"));
    const made = spawnSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
      "-subj", "/CN=api.example.test", "-addext", "subjectAltName=DNS:api.example.test",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    ]);
    if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
    cert = readFileSync(join(dir, "cert.pem"), "utf8");
    const started = await startServers(["127.0.0.2"], { key: readFileSync(join(dir, "key.pem"), "utf8"), cert });
    [server] = started.servers as [TestServer];
    P = started.port;
    closeServers = started.close;
    guard = installNetworkGuard({});
    client = createHttpClient({ resolver, ca: [cert], timeoutMs: 2000 });
    const rule = (origin: string) => ({ origin, methods: ["GET" as const], allowPrivateNetwork: true });
    cap = capWith({ http: [rule(`https://api.example.test:${P}`), rule(`https://other.example.test:${P}`), rule(`https://127.0.0.2:${P}`)] });
  });

  afterAll(async () => {
    client.close();
    guard.restore();
    await closeServers();
    rmSync(dir, { recursive: true, force: true });
  });

  it("connects to the checked address and verifies the certificate for the host name", async () => {
    const res = await client.request(cap, `https://api.example.test:${P}/v1/ok`);
    expect(text(res.body)).toBe("hello from 127.0.0.2/v1/ok");
    expect(server.requests.at(-1)?.headers.host).toBe(`api.example.test:${P}`);
    expect(guard.targets.at(-1)).toBe("127.0.0.2");
  });

  it("refuses a certificate that does not name the host, though the address is the same", async () => {
    await expect(client.request(cap, `https://other.example.test:${P}/v1/ok`)).rejects.toThrow(HttpRequestFailed);
    await expect(client.request(cap, `https://other.example.test:${P}/v1/ok`)).rejects.toThrow(/other\.example\.test.*(altnames|not in the cert)/);
  });

  it("checks an IP-literal URL against the certificate's addresses", async () => {
    await expect(client.request(cap, `https://127.0.0.2:${P}/v1/ok`)).rejects.toThrow(/IP: 127\.0\.0\.2 is not in the cert's list/);
  });

  it("trusts only the usual roots without the ca option", async () => {
    const plain = createHttpClient({ resolver });
    await expect(plain.request(cap, `https://api.example.test:${P}/v1/ok`)).rejects.toThrow(/self-signed certificate/);
    plain.close();
  });
});
