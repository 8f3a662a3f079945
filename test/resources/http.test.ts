import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { BudgetExhausted, InvalidInput, LimitExceeded, narrow, restrict, revocable, Revoked, type Capability, type Grant } from "../../src/index.ts";
import { createHttpClient, type HttpClient } from "../../src/resources/http/client.ts";
import { HttpRequestFailed } from "../../src/index.ts";
import { capWith, installNetworkGuard, startServers, tableResolver, text, type TestServer } from "./http-fixtures.ts";

let P = 0;
let api: TestServer;
let other: TestServer;
let closeServers: () => Promise<void>;
let guard: ReturnType<typeof installNetworkGuard>;
let client: HttpClient;
let cap: Capability<{ readonly http: "GET" | "HEAD" | "POST" }>;
let moves = 0;
const resolver = tableResolver({
  "api.example.test": ["127.0.0.2"],
  "other.example.test": ["127.0.0.4"],
  "moving.example.test": () => [moves++ === 0 ? "127.0.0.2" : "127.0.0.4"],
  "fallback.example.test": ["127.0.0.9", "127.0.0.2"],
  "down.example.test": ["127.0.0.9", "127.0.0.8"],
});

const apiUrl = (path: string) => `http://api.example.test:${P}${path}`;
const otherUrl = (path: string) => `http://other.example.test:${P}${path}`;

function grant(): Grant {
  const rule = (origin: string) => ({ origin, methods: ["GET", "HEAD", "POST"] as const, allowPrivateNetwork: true });
  return {
    http: [
      { ...rule(`http://api.example.test:${P}`), pathPrefix: "/v1/" },
      rule(`http://other.example.test:${P}`),
      rule(`http://moving.example.test:${P}`),
      rule(`http://fallback.example.test:${P}`),
      rule(`http://down.example.test:${P}`),
      rule(`http://127.0.0.9:${P}`),
      { origin: `http://127.0.0.2:${P}`, methods: ["GET"], pathPrefix: "/v1/" },
    ],
  };
}

beforeAll(async () => {
  const started = await startServers(["127.0.0.2", "127.0.0.4"]);
  [api, other] = started.servers as [TestServer, TestServer];
  P = started.port;
  closeServers = started.close;
  guard = installNetworkGuard({});
  client = createHttpClient({ resolver, timeoutMs: 2000, maxResponseBytes: 64 * 1024 });
  cap = capWith(grant());
});

afterAll(async () => {
  client.close();
  guard.restore();
  await closeServers();
});

const lastSeen = (server: TestServer) => server.requests.at(-1);

describe("confined HTTP client: allowed requests", () => {
  it("GETs through a granted name, connecting to the checked address with the name as Host", async () => {
    const calls = resolver.calls.length;
    const res = await client.request(cap, apiUrl("/v1/ok"));
    expect(res.status).toBe(200);
    expect(text(res.body)).toBe("hello from 127.0.0.2/v1/ok");
    expect(res.url).toBe(apiUrl("/v1/ok"));
    expect(res.redirects).toEqual([]);
    expect(lastSeen(api)?.headers.host).toBe(`api.example.test:${P}`);
    expect(guard.targets.at(-1) ?? "127.0.0.2").toBe("127.0.0.2"); // a pooled socket opens no new connection
    expect(resolver.calls.length).toBe(calls + 1);
  });

  it("reaches a granted IP literal in any spelling WHATWG accepts, without asking the resolver", async () => {
    const calls = resolver.calls.length;
    const res = await client.request(cap, `http://2130706434:${P}/v1/ok`);
    expect(res.url).toBe(`http://127.0.0.2:${P}/v1/ok`);
    expect(text(res.body)).toBe("hello from 127.0.0.2/v1/ok");
    expect(resolver.calls.length).toBe(calls);
  });

  it("sends the canonical path it authorized: case, dot segments and encoded unreserved characters normalized, query kept", async () => {
    const res = await client.request(cap, `http://API.Example.TEST:${P}/v1/a/../%6Fk?q=1&r=%2F#frag`);
    expect(res.url).toBe(apiUrl("/v1/ok?q=1&r=%2F"));
    expect(lastSeen(api)?.url).toBe("/v1/ok?q=1&r=%2F");
  });

  it("POSTs a string body with the caller's headers", async () => {
    const res = await client.request(cap, apiUrl("/v1/echo"), { method: "POST", headers: { "Content-Type": "text/plain", "X-Trace": "7" }, body: "héllo" });
    const seen = JSON.parse(text(res.body)) as { method: string; body: string; headers: Record<string, string> };
    expect(seen.method).toBe("POST");
    expect(seen.body).toBe("héllo");
    expect(seen.headers["content-type"]).toBe("text/plain");
    expect(seen.headers["x-trace"]).toBe("7");
    expect(seen.headers["content-length"]).toBe("6");
  });

  it("sends a byte body as it was when the call was made", async () => {
    const bytes = new Uint8Array([104, 105]);
    const pending = client.request(cap, apiUrl("/v1/echo"), { method: "POST", body: bytes });
    bytes[0] = 88;
    const seen = JSON.parse(text((await pending).body)) as { body: string };
    expect(seen.body).toBe("hi");
  });

  it("returns frozen plain data: lower-case headers without a prototype, a body that owns its memory", async () => {
    const res = await client.request(cap, apiUrl("/v1/echo"));
    expect(Object.isFrozen(res)).toBe(true);
    expect(Object.isFrozen(res.headers)).toBe(true);
    expect(Object.getPrototypeOf(res.headers)).toBeNull();
    expect(res.headers["content-type"]).toBe("application/json");
    expect(res.headers["set-cookie"]).toBe("a=1, b=2");
    expect(res.body.byteOffset).toBe(0);
    expect(res.body.buffer.byteLength).toBe(res.body.length);
  });

  it("answers HEAD with an empty body", async () => {
    const res = await client.request(cap, apiUrl("/v1/ok"), { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(0);
  });

  it("acts for the tenant a tenant-confined capability requires", async () => {
    const res = await client.request(restrict(cap, { tenants: ["acme"] }), apiUrl("/v1/ok"), { tenant: "acme" });
    expect(res.status).toBe(200);
  });

  it("reuses a kept-alive connection only for the same checked address", async () => {
    await client.request(cap, apiUrl("/v1/ok"));
    const before = api.connections();
    await client.request(cap, `http://moving.example.test:${P}/first`);
    expect(lastSeen(api)?.url).toBe("/first");
    // The name now answers with another address: the request goes there, not down the pooled socket.
    await client.request(cap, `http://moving.example.test:${P}/second`);
    expect(lastSeen(other)?.url).toBe("/second");
    expect(api.connections()).toBe(before);
  });

  it("opens new connections after close()", async () => {
    const c = createHttpClient({ resolver });
    await c.request(cap, apiUrl("/v1/ok"));
    const before = api.connections();
    c.close();
    const res = await c.request(cap, apiUrl("/v1/ok"));
    expect(res.status).toBe(200);
    expect(api.connections()).toBe(before + 1);
    c.close();
  });
});

describe("confined HTTP client: redirects", () => {
  const redirect = (to: string, status = 302) => apiUrl(`/v1/redirect?status=${status}&to=${encodeURIComponent(to)}`);

  it("follows a granted redirect and reports the hops", async () => {
    const first = redirect("/v1/ok");
    const res = await client.request(cap, first);
    expect(res.status).toBe(200);
    expect(res.url).toBe(apiUrl("/v1/ok"));
    expect(res.redirects).toEqual([first]);
  });

  it("turns a POST into a GET without body or body headers after 303, and after 301 and 302", async () => {
    for (const status of [303, 301, 302]) {
      await client.request(cap, redirect("/v1/echo", status), { method: "POST", headers: { "content-type": "text/plain", "x-keep": "1" }, body: "data" });
      const seen = lastSeen(api);
      expect(seen).toMatchObject({ method: "GET", url: "/v1/echo", body: "" });
      expect(seen?.headers["content-type"]).toBeUndefined();
      expect(seen?.headers["x-keep"]).toBe("1");
    }
  });

  it("keeps method and body after 307 and 308", async () => {
    for (const status of [307, 308]) {
      await client.request(cap, redirect("/v1/echo", status), { method: "POST", body: "data" });
      expect(lastSeen(api)).toMatchObject({ method: "POST", url: "/v1/echo", body: "data" });
    }
  });

  it("keeps credentials on the same origin and drops them for another origin", async () => {
    const headers = { authorization: "Bearer s3cret", cookie: "sid=1", "x-keep": "1" };
    await client.request(cap, redirect("/v1/echo"), { headers });
    expect(lastSeen(api)?.headers).toMatchObject(headers);
    await client.request(cap, redirect(otherUrl("/echo")), { headers });
    const seen = lastSeen(other);
    expect(seen?.headers.authorization).toBeUndefined();
    expect(seen?.headers.cookie).toBeUndefined();
    expect(seen?.headers["x-keep"]).toBe("1");
    expect(seen?.headers.host).toBe(`other.example.test:${P}`);
  });

  it("charges every hop as a use, so a single-use capability cannot follow a redirect", async () => {
    await expect(client.request(restrict(cap, { maxUses: 2 }), redirect("/v1/ok"))).resolves.toMatchObject({ status: 200 });
    await expect(client.request(restrict(cap, { maxUses: 1 }), redirect("/v1/ok"))).rejects.toBeInstanceOf(BudgetExhausted);
  });

  it("refuses every redirect when maxRedirects is 0", async () => {
    const c = createHttpClient({ resolver, maxRedirects: 0 });
    await expect(c.request(cap, redirect("/v1/ok"))).rejects.toThrow(/maxRedirects \(0\)/);
    c.close();
  });

  it("returns a 3xx without Location as the final response", async () => {
    const res = await client.request(cap, apiUrl("/v1/redirect?status=304&to="));
    expect(res.status).toBe(304);
  });
});

describe("confined HTTP client: revocation, deadlines and failures", () => {
  it("aborts a request in flight when its capability is revoked, and closes the connection", async () => {
    const r = revocable(cap);
    const pending = client.request(r.capability, apiUrl("/v1/slow?id=revoke"));
    await vi.waitFor(() => {
      expect(lastSeen(api)?.url).toBe("/v1/slow?id=revoke");
    });
    r.revoke("user cancelled the task");
    await expect(pending).rejects.toThrow(Revoked);
    await expect(pending).rejects.toThrow(/user cancelled the task/);
    await vi.waitFor(() => {
      expect(lastSeen(api)?.connectionOpen()).toBe(false);
    });
  });

  it("aborts while the body is arriving", async () => {
    const r = revocable(cap);
    const pending = client.request(r.capability, apiUrl("/v1/trickle?id=revoke"));
    await vi.waitFor(() => {
      expect(lastSeen(api)?.url).toBe("/v1/trickle?id=revoke");
    });
    r.revoke();
    await expect(pending).rejects.toBeInstanceOf(Revoked);
  });

  it("aborts during name resolution, before any connection", async () => {
    const answers: ((addresses: readonly string[]) => void)[] = [];
    const slowResolver = () =>
      new Promise<readonly string[]>((resolve) => {
        answers.push(resolve);
      });
    const c = createHttpClient({ resolver: slowResolver });
    const r = revocable(cap);
    const before = api.connections();
    const pending = c.request(r.capability, apiUrl("/v1/ok"));
    await vi.waitFor(() => {
      expect(answers).toHaveLength(1);
    });
    r.revoke();
    await expect(pending).rejects.toBeInstanceOf(Revoked);
    answers[0]?.(["127.0.0.2"]);
    expect(api.connections()).toBe(before);
    c.close();
  });

  it("limits the whole call, the body included, to timeoutMs", async () => {
    const c = createHttpClient({ resolver, timeoutMs: 150 });
    const err: unknown = await c.request(cap, apiUrl("/v1/trickle")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LimitExceeded);
    expect((err as LimitExceeded).limit).toBe("timeoutMs");
    const hung = createHttpClient({ resolver: () => new Promise(() => undefined), timeoutMs: 50 });
    await expect(hung.request(cap, apiUrl("/v1/ok"))).rejects.toThrow(/did not complete within timeoutMs, 50 ms/);
    c.close();
    hung.close();
  });

  it("reports an unresolvable name as HttpRequestFailed, with the resolver's error as cause", async () => {
    const c = createHttpClient({ resolver: tableResolver({}) });
    const err: unknown = await c.request(cap, apiUrl("/v1/ok")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpRequestFailed);
    expect((err as HttpRequestFailed).message).toMatch(/could not resolve api\.example\.test: getaddrinfo ENOTFOUND/);
    expect((err as HttpRequestFailed).cause).toBeInstanceOf(Error);
    c.close();
  });

  it("reports a refused connection as HttpRequestFailed naming the address", async () => {
    await expect(client.request(cap, `http://127.0.0.9:${P}/`)).rejects.toThrow(
      new RegExp(`GET http://127\\.0\\.0\\.9:${P}/ via 127\\.0\\.0\\.9 failed: connect ECONNREFUSED`),
    );
  });

  it("tries the next checked address when one refuses the connection", async () => {
    const tried = guard.targets.length;
    const res = await client.request(cap, `http://fallback.example.test:${P}/v1/ok`);
    expect(text(res.body)).toBe("hello from 127.0.0.2/v1/ok");
    expect(guard.targets.slice(tried)).toEqual(["127.0.0.9", "127.0.0.2"]);
  });

  it("names every address when none accepts the connection", async () => {
    await expect(client.request(cap, `http://down.example.test:${P}/`)).rejects.toThrow(
      /could not connect to any of its addresses: .* via 127\.0\.0\.9 failed: connect ECONNREFUSED[^;]*; .* via 127\.0\.0\.8 failed: connect ECONNREFUSED/,
    );
  });

  it("with the system resolver, denies a granted name that resolves to loopback", async () => {
    const c = createHttpClient();
    const local = capWith({ http: [{ origin: `http://localhost:${P}`, methods: ["GET"] }] });
    await expect(c.request(local, `http://localhost:${P}/`)).rejects.toThrow(/\(loopback\)/);
    c.close();
  });

  it("lets exactly one of two concurrent calls through a single-use capability", async () => {
    const once = restrict(cap, { maxUses: 1 });
    const results = await Promise.allSettled([client.request(once, apiUrl("/v1/ok")), client.request(once, apiUrl("/v1/ok"))]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(results.find((r) => r.status === "rejected")?.reason).toBeInstanceOf(BudgetExhausted);
  });
});

describe("confined HTTP client: bad options", () => {
  it.each([
    [{ timeoutMs: 0 }, /timeoutMs must be a whole number from 1/],
    [{ timeoutMs: 1.5 }, /timeoutMs must be a whole number/],
    [{ maxResponseBytes: -1 }, /maxResponseBytes must be a whole number from 0/],
    [{ maxRedirects: 21 }, /maxRedirects must be a whole number from 0 to 20; got 21/],
    [{ maxRedirects: "3" }, /got string/],
    [{ resolver: "8.8.8.8" }, /resolver must be a function/],
    [{ ca: ["not a certificate"] }, /ca must be a non-empty array of PEM certificates/],
    [{ timeout: 5 }, /unknown option "timeout"/],
    [null, /options must be an object/],
  ])("createHttpClient(%j) → InvalidInput", (options, says) => {
    expect(() => createHttpClient(options as never)).toThrow(InvalidInput);
    expect(() => createHttpClient(options as never)).toThrow(says);
  });

  it.each([
    ["a URL that is not a string", () => client.request(cap, 42 as never), /url must be a string/],
    ["a relative URL", () => client.request(cap, "/v1/ok"), /not a valid absolute URL/],
    ["options that are not an object", () => client.request(cap, apiUrl("/v1/ok"), "POST" as never), /request options must be an object/],
    ["headers that are not an object", () => client.request(cap, apiUrl("/v1/ok"), { headers: [["a", "b"]] as never }), /headers must be an object/],
    ["a header value that is not a string", () => client.request(cap, apiUrl("/v1/ok"), { headers: { "x-n": 1 as never } }), /value must be a string/],
    ["a header name with a space", () => client.request(cap, apiUrl("/v1/ok"), { headers: { "x n": "1" } }), /"x n" is not a valid header/],
    ["a body that is neither string nor bytes", () => client.request(cap, apiUrl("/v1/ok"), { method: "POST", body: { a: 1 } as never }), /body must be a string or a Uint8Array/],
    ["a tenant that is not a string", () => client.request(cap, apiUrl("/v1/ok"), { tenant: 7 as never }), /tenant must be a string/],
  ])("%s → InvalidInput", async (_, call, says) => {
    await expect(call()).rejects.toBeInstanceOf(InvalidInput);
    await expect(call()).rejects.toThrow(says);
  });

  it("is typed by the capability's reach", () => {
    const getOnly = narrow(cap, { http: [{ origin: `http://api.example.test:${P}`, methods: ["GET"], allowPrivateNetwork: true }] });
    const typed = async () => {
      await client.request(getOnly, apiUrl("/v1/ok"));
      // @ts-expect-error a GET-only capability cannot be used for POST
      await client.request(getOnly, apiUrl("/v1/ok"), { method: "POST", body: "x" });
      // @ts-expect-error a capability without HTTP reach cannot be used at all
      await client.request(narrow(getOnly, { tools: ["search"] }), apiUrl("/v1/ok"));
    };
    expect(typeof typed).toBe("function");
  });
});
