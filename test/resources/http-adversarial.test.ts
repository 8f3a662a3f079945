import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BudgetExhausted,
  CapabilityDenied,
  createManualClock,
  createMint,
  Expired,
  InvalidInput,
  LimitExceeded,
  narrow,
  NotACapability,
  restrict,
  revocable,
  Revoked,
  type Capability,
  type Grant,
} from "../../src/index.ts";
import { createHttpClient, type HttpClient } from "../../src/resources/http/client.ts";
import { HttpRequestFailed } from "../../src/index.ts";
import { capWith, installNetworkGuard, startServers, tableResolver, text, type TestServer } from "./http-fixtures.ts";

/*
 * Bypass attempts against the confined HTTP client, each with the typed error
 * it must get and the I/O it may cause. "none" means no DNS query, no
 * connection attempt, no TCP connection and no request on any server.
 */

const PUBLIC_IP = "93.184.215.14"; // stands in for a host on the internet; routed to 127.0.0.5 by the guard
const ATTACK_NAMES = ["public", "sneaky", "mixed", "mapped", "mappedhex", "metadata", "ula", "linklocal", "ten", "zero", "unspecified", "nat64", "bogus", "zoned", "rebind"];

let P = 0;
let api: TestServer;
let internal: TestServer;
let publicHost: TestServer;
let all: TestServer[];
let closeServers: () => Promise<void>;
let guard: ReturnType<typeof installNetworkGuard>;
let client: HttpClient;
let cap: Capability<{ readonly http: "GET" | "POST" }>;
const resolver = tableResolver({
  "api.example.test": ["127.0.0.2"],
  "internal.example.test": ["127.0.0.3"],
  "public.example.test": [PUBLIC_IP],
  "sneaky.example.test": ["127.0.0.3"],
  "mixed.example.test": [PUBLIC_IP, "127.0.0.3"],
  "mapped.example.test": ["::ffff:127.0.0.3"],
  "mappedhex.example.test": ["::ffff:7f00:3"],
  "metadata.example.test": ["169.254.169.254"],
  "ula.example.test": ["fd00::1"],
  "linklocal.example.test": ["fe80::1"],
  "ten.example.test": ["10.0.0.5"],
  "zero.example.test": ["0.0.0.0"],
  "unspecified.example.test": ["::"],
  "nat64.example.test": ["64:ff9b::7f00:3"],
  "bogus.example.test": ["not-an-ip"],
  "zoned.example.test": ["fe80::1%lo"],
  "rebind.example.test": (call) => (call === 1 ? [PUBLIC_IP] : ["127.0.0.3"]),
  "ranged.example.test": ["127.0.0.3"],
  "rangedmixed.example.test": ["127.0.0.3", "127.0.0.2"],
  "rangedpublic.example.test": [PUBLIC_IP],
  "rangedmeta.example.test": ["169.254.169.254"],
  "rangedmappedmeta.example.test": ["::ffff:169.254.169.254"],
  "rangedmappedother.example.test": ["::ffff:127.0.0.2"],
  "rangedsixtofour.example.test": ["2002:a9fe:a9fe::1"],
  "rangednat64.example.test": ["64:ff9b::7f00:2"],
  "rangedzero.example.test": ["0.0.0.0"],
  "rangedula.example.test": ["fd00:2::1"],
});

/** Names granted with address ranges: each may resolve only to 127.0.0.3, or to fd00:1::/32, and nothing else (IPv4 or IPv6). */
const RANGED = ["ranged", "rangedmixed", "rangedpublic", "rangedmeta", "rangedmappedmeta", "rangedmappedother", "rangedsixtofour", "rangednat64", "rangedzero", "rangedula"];
const rangedCap = () =>
  capWith({
    http: [
      ...RANGED.map((n) => ({ origin: `http://${n}.example.test:${P}`, methods: ["GET" as const], addresses: ["127.0.0.3/32", "fd00:1::/32", "2000::/3"] })),
      { origin: `http://api.example.test:${P}`, methods: ["GET" as const], addresses: ["127.0.0.2/32"] },
      { origin: `http://127.0.0.2:${P}`, methods: ["GET" as const], addresses: ["127.0.0.0/8"] },
      { origin: `http://127.0.0.3:${P}`, methods: ["GET" as const], addresses: ["127.0.0.2/32"] },
    ],
  });

const apiUrl = (path: string) => `http://api.example.test:${P}${path}`;
const named = (name: string, path = "/v1/ok") => `http://${name}.example.test:${P}${path}`;

function grant(): Grant {
  return {
    http: [
      { origin: `http://api.example.test:${P}`, methods: ["GET", "POST"], pathPrefix: "/v1/", allowPrivateNetwork: true },
      { origin: `http://127.0.0.2:${P}`, methods: ["GET"], pathPrefix: "/v1/" },
      ...ATTACK_NAMES.map((n) => ({ origin: `http://${n}.example.test:${P}`, methods: ["GET" as const] })),
    ],
  };
}

beforeAll(async () => {
  const started = await startServers(["127.0.0.2", "127.0.0.3", "127.0.0.5"]);
  [api, internal, publicHost] = started.servers as [TestServer, TestServer, TestServer];
  all = started.servers;
  P = started.port;
  closeServers = started.close;
  guard = installNetworkGuard({ [PUBLIC_IP]: "127.0.0.5" });
  client = createHttpClient({ resolver, timeoutMs: 1000, maxResponseBytes: 64 * 1024, maxRedirects: 3 });
  cap = capWith(grant());
});

afterAll(async () => {
  client.close();
  guard.restore();
  await closeServers();
});

type Io = "none" | "dns only" | { readonly untouched: () => readonly TestServer[] };

/** A POST granted on /api/public only, as in the report that found the rewrite headers. */
const postPublic = (path: string, headers: Record<string, string> = {}) =>
  client.request(capWith({ http: [{ origin: `http://api.example.test:${P}`, methods: ["POST"], pathPrefix: "/api/public", allowPrivateNetwork: true }] }), apiUrl(path), {
    method: "POST",
    body: "x",
    headers,
  });

const REWRITE_HEADERS: readonly [string, string][] = [
  ["X-Original-URL", "/admin"],
  ["X-Rewrite-URL", "/admin"],
  ["X-HTTP-Method-Override", "DELETE"],
  ["X-HTTP-Method", "DELETE"],
  ["X-Method-Override", "DELETE"],
  ["x-original-url", "/admin"],
];

interface Attempt {
  readonly name: string;
  readonly call: () => Promise<unknown>;
  readonly error: abstract new (...args: never[]) => Error;
  readonly says: RegExp;
  readonly io: Io;
}

const attempts: Attempt[] = [
  // Userinfo and authority confusion
  { name: "userinfo naming the granted host before @", call: () => client.request(cap, `http://api.example.test:${P}@internal.example.test:${P}/v1/ok`), error: InvalidInput, says: /userinfo/, io: "none" },
  { name: "user:password@ in front of the granted host", call: () => client.request(cap, `http://user:pass@api.example.test:${P}/v1/ok`), error: InvalidInput, says: /userinfo/, io: "none" },
  { name: "percent-encoded @ in the host", call: () => client.request(cap, `http://api.example.test%40internal.example.test:${P}/v1/ok`), error: InvalidInput, says: /not a valid absolute URL/, io: "none" },
  { name: "backslash before @ (special-scheme path separator)", call: () => client.request(cap, `http://internal.example.test:${P}\\@api.example.test:${P}/v1/ok`), error: CapabilityDenied, says: /does not grant GET http:\/\/internal\.example\.test/, io: "none" },
  // Scheme, port, origin
  { name: "scheme mismatch (https for an http grant)", call: () => client.request(cap, `https://api.example.test:${P}/v1/ok`), error: CapabilityDenied, says: /does not grant GET https:/, io: "none" },
  { name: "file: scheme", call: () => client.request(cap, "file:///etc/passwd"), error: InvalidInput, says: /only http: and https:/, io: "none" },
  { name: "gopher: scheme", call: () => client.request(cap, `gopher://api.example.test:${P}/`), error: InvalidInput, says: /only http: and https:/, io: "none" },
  { name: "port mismatch", call: () => client.request(cap, `http://api.example.test:${P + 1}/v1/ok`), error: CapabilityDenied, says: /does not grant/, io: "none" },
  { name: "default port instead of the granted one", call: () => client.request(cap, "http://api.example.test/v1/ok"), error: CapabilityDenied, says: /does not grant GET http:\/\/api\.example\.test\/v1/, io: "none" },
  { name: "trailing dot on the host name", call: () => client.request(cap, `http://api.example.test.:${P}/v1/ok`), error: CapabilityDenied, says: /does not grant/, io: "none" },
  { name: "host not granted (no DNS query for it)", call: () => client.request(cap, named("internal")), error: CapabilityDenied, says: /does not grant GET http:\/\/internal/, io: "none" },
  { name: "localhost, not granted", call: () => client.request(cap, `http://localhost:${P}/v1/ok`), error: CapabilityDenied, says: /does not grant/, io: "none" },
  // Methods
  { name: "method not granted (DELETE)", call: () => client.request(cap as never, apiUrl("/v1/ok"), { method: "DELETE" }), error: CapabilityDenied, says: /does not grant DELETE/, io: "none" },
  { name: "method granted on another origin only (POST to public)", call: () => client.request(cap, named("public"), { method: "POST", body: "x" }), error: CapabilityDenied, says: /does not grant POST/, io: "none" },
  { name: "unknown method CONNECT", call: () => client.request(cap, apiUrl("/v1/ok"), { method: "CONNECT" as never }), error: InvalidInput, says: /method must be one of/, io: "none" },
  { name: "lower-case method", call: () => client.request(cap, apiUrl("/v1/ok"), { method: "get" as never }), error: InvalidInput, says: /upper case/, io: "none" },
  // Paths
  { name: "path outside the prefix", call: () => client.request(cap, apiUrl("/v2/ok")), error: CapabilityDenied, says: /does not grant GET .*\/v2\/ok/, io: "none" },
  { name: "prefix without a segment boundary", call: () => client.request(cap, apiUrl("/v1.evil/ok")), error: CapabilityDenied, says: /\/v1\.evil\/ok/, io: "none" },
  { name: "dot segments escaping the prefix", call: () => client.request(cap, apiUrl("/v1/../admin")), error: CapabilityDenied, says: /does not grant GET .*:\d+\/admin/, io: "none" },
  { name: "percent-encoded dot segments", call: () => client.request(cap, apiUrl("/v1/%2e%2e/admin")), error: CapabilityDenied, says: /:\d+\/admin/, io: "none" },
  { name: "mixed-case encoded dots", call: () => client.request(cap, apiUrl("/v1/%2E%2e/admin")), error: CapabilityDenied, says: /:\d+\/admin/, io: "none" },
  { name: "half-encoded dots", call: () => client.request(cap, apiUrl("/v1/.%2e/admin")), error: CapabilityDenied, says: /:\d+\/admin/, io: "none" },
  { name: "backslashes as separators", call: () => client.request(cap, apiUrl("/v1\\..\\admin")), error: CapabilityDenied, says: /:\d+\/admin/, io: "none" },
  { name: "encoded slash", call: () => client.request(cap, apiUrl("/v1/..%2fadmin")), error: InvalidInput, says: /encoded '\/'/, io: "none" },
  { name: "encoded backslash", call: () => client.request(cap, apiUrl("/v1/..%5cadmin")), error: InvalidInput, says: /encoded/, io: "none" },
  { name: "encoded NUL", call: () => client.request(cap, apiUrl("/v1/ok%00.json")), error: InvalidInput, says: /NUL/, io: "none" },
  { name: "URL longer than a request may carry", call: () => client.request(cap, apiUrl(`/v1/${"a".repeat(9000)}`)), error: InvalidInput, says: /8192/, io: "none" },
  // IP literals in other spellings
  { name: "decimal IPv4 of a non-granted address", call: () => client.request(cap, `http://2130706435:${P}/v1/ok`), error: CapabilityDenied, says: /127\.0\.0\.3/, io: "none" },
  { name: "hex IPv4", call: () => client.request(cap, `http://0x7f.0.0.3:${P}/v1/ok`), error: CapabilityDenied, says: /127\.0\.0\.3/, io: "none" },
  { name: "octal IPv4", call: () => client.request(cap, `http://0177.0.0.3:${P}/v1/ok`), error: CapabilityDenied, says: /127\.0\.0\.3/, io: "none" },
  { name: "decimal form of the granted literal, outside its prefix", call: () => client.request(cap, `http://2130706434:${P}/admin`), error: CapabilityDenied, says: /127\.0\.0\.2:\d+\/admin/, io: "none" },
  { name: "IPv4-mapped IPv6 literal of the granted address", call: () => client.request(cap, `http://[::ffff:127.0.0.2]:${P}/v1/ok`), error: CapabilityDenied, says: /\[::ffff:7f00:2\]/, io: "none" },
  { name: "IPv6 loopback literal", call: () => client.request(cap, `http://[::1]:${P}/v1/ok`), error: CapabilityDenied, says: /\[::1\]/, io: "none" },
  // DNS answers that point inside
  { name: "granted name resolving to loopback", call: () => client.request(cap, named("sneaky")), error: CapabilityDenied, says: /resolves to 127\.0\.0\.3 \(loopback\)/, io: "dns only" },
  { name: "answers mixing a public and a private address", call: () => client.request(cap, named("mixed")), error: CapabilityDenied, says: /127\.0\.0\.3 \(loopback\)/, io: "dns only" },
  { name: "answer in IPv4-mapped IPv6", call: () => client.request(cap, named("mapped")), error: CapabilityDenied, says: /\(loopback\)/, io: "dns only" },
  { name: "answer in IPv4-mapped IPv6, hex form", call: () => client.request(cap, named("mappedhex")), error: CapabilityDenied, says: /\(loopback\)/, io: "dns only" },
  { name: "answer is the cloud metadata address", call: () => client.request(cap, named("metadata")), error: CapabilityDenied, says: /169\.254\.169\.254 \(link-local\)/, io: "dns only" },
  { name: "answer is an IPv6 unique-local address", call: () => client.request(cap, named("ula")), error: CapabilityDenied, says: /\(private\)/, io: "dns only" },
  { name: "answer is an IPv6 link-local address", call: () => client.request(cap, named("linklocal")), error: CapabilityDenied, says: /\(link-local\)/, io: "dns only" },
  { name: "answer is 10/8", call: () => client.request(cap, named("ten")), error: CapabilityDenied, says: /\(private\)/, io: "dns only" },
  { name: "answer is 0.0.0.0 (this host on Linux)", call: () => client.request(cap, named("zero")), error: CapabilityDenied, says: /\(reserved\)/, io: "dns only" },
  { name: "answer is ::", call: () => client.request(cap, named("unspecified")), error: CapabilityDenied, says: /\(reserved\)/, io: "dns only" },
  { name: "answer is NAT64 of loopback", call: () => client.request(cap, named("nat64")), error: CapabilityDenied, says: /\(loopback\)/, io: "dns only" },
  { name: "answer is not an address", call: () => client.request(cap, named("bogus")), error: HttpRequestFailed, says: /not an IP address/, io: "dns only" },
  { name: "answer carries an IPv6 zone id", call: () => client.request(cap, named("zoned")), error: HttpRequestFailed, says: /not an IP address/, io: "dns only" },
  {
    name: "rebinding resolver (first answer public, second private)",
    call: async () => {
      const first = await client.request(cap, named("rebind"));
      expect(first.status).toBe(200);
      expect(guard.targets.at(-1)).toBe(PUBLIC_IP);
      return client.request(cap, named("rebind"));
    },
    error: CapabilityDenied,
    says: /rebind\.example\.test:\d+ resolves to 127\.0\.0\.3/,
    io: { untouched: () => [internal, api] },
  },
  // Address ranges: a name may resolve only into the ranges its rule names
  { name: "ranges: answers mixing an address inside the ranges and one outside", call: () => client.request(rangedCap(), named("rangedmixed")), error: CapabilityDenied, says: /resolves to 127\.0\.0\.2, outside the address ranges/, io: "dns only" },
  { name: "ranges: a public answer outside them", call: () => client.request(rangedCap(), named("rangedpublic")), error: CapabilityDenied, says: /outside the address ranges/, io: "dns only" },
  { name: "ranges: the metadata address", call: () => client.request(rangedCap(), named("rangedmeta")), error: CapabilityDenied, says: /169\.254\.169\.254, outside/, io: "dns only" },
  { name: "ranges: the metadata address as IPv4-mapped IPv6 (not in 2000::/3 or any IPv6 range)", call: () => client.request(rangedCap(), named("rangedmappedmeta")), error: CapabilityDenied, says: /::ffff:169\.254\.169\.254, outside/, io: "dns only" },
  { name: "ranges: another loopback address as IPv4-mapped IPv6", call: () => client.request(rangedCap(), named("rangedmappedother")), error: CapabilityDenied, says: /outside the address ranges/, io: "dns only" },
  { name: "ranges: 6to4 form of the metadata address, inside 2000::/3 as IPv6", call: () => client.request(rangedCap(), named("rangedsixtofour")), error: CapabilityDenied, says: /outside the address ranges/, io: "dns only" },
  { name: "ranges: NAT64 form of another loopback address", call: () => client.request(rangedCap(), named("rangednat64")), error: CapabilityDenied, says: /outside the address ranges/, io: "dns only" },
  { name: "ranges: 0.0.0.0 (this host on Linux)", call: () => client.request(rangedCap(), named("rangedzero")), error: CapabilityDenied, says: /0\.0\.0\.0, outside/, io: "dns only" },
  { name: "ranges: an IPv6 unique-local address in another /32", call: () => client.request(rangedCap(), named("rangedula")), error: CapabilityDenied, says: /fd00:2::1, outside/, io: "dns only" },
  { name: "ranges: an IP-literal origin outside its own rule's ranges", call: () => client.request(rangedCap(), `http://127.0.0.3:${P}/v1/ok`), error: CapabilityDenied, says: /127\.0\.0\.3:\d+ resolves to 127\.0\.0\.3, outside/, io: "none" },
  {
    name: "ranges: a narrowing to a smaller range than the parent's",
    call: () => client.request(narrow(rangedCap(), { http: [{ origin: `http://ranged.example.test:${P}`, methods: ["GET"], addresses: ["127.0.0.2/32"] }] }), named("ranged")),
    error: CapabilityDenied,
    says: /link 1.*outside the address ranges/,
    io: "dns only",
  },
  {
    name: "ranges: a narrowing to allowPrivateNetwork does not widen the parent's ranges",
    call: () => client.request(narrow(rangedCap(), { http: [{ origin: `http://rangedmixed.example.test:${P}`, methods: ["GET"], allowPrivateNetwork: true }] }), named("rangedmixed")),
    error: CapabilityDenied,
    says: /root capability .*outside the address ranges/,
    io: "dns only",
  },
  { name: "ranges: a redirect to a granted name whose answer is outside them", call: () => client.request(rangedCap(), `http://127.0.0.2:${P}/v1/redirect?to=${encodeURIComponent(named("rangedmeta"))}`), error: CapabilityDenied, says: /169\.254\.169\.254, outside/, io: { untouched: () => [internal] } },
  // Redirects
  { name: "redirect to a non-granted origin", call: () => client.request(cap, apiUrl(`/v1/redirect?to=${encodeURIComponent(named("internal"))}`)), error: CapabilityDenied, says: /does not grant GET http:\/\/internal/, io: { untouched: () => [internal] } },
  { name: "redirect from a public name to a granted name that resolves to a private address", call: () => client.request(cap, named("public", `/v1/redirect?to=${encodeURIComponent(named("sneaky"))}`)), error: CapabilityDenied, says: /sneaky\.example\.test:\d+ resolves to 127\.0\.0\.3/, io: { untouched: () => [internal] } },
  { name: "redirect to the metadata address", call: () => client.request(cap, apiUrl("/v1/redirect?to=http://169.254.169.254/latest/meta-data/")), error: CapabilityDenied, says: /169\.254\.169\.254/, io: { untouched: () => [internal] } },
  { name: "redirect out of the path prefix", call: () => client.request(cap, apiUrl("/v1/redirect?to=/admin")), error: CapabilityDenied, says: /:\d+\/admin/, io: { untouched: () => [internal] } },
  { name: "redirect with userinfo", call: () => client.request(cap, apiUrl(`/v1/redirect?to=${encodeURIComponent(`http://api.example.test:${P}@internal.example.test:${P}/v1/ok`)}`)), error: InvalidInput, says: /redirected \(302\) to .*userinfo/, io: { untouched: () => [internal] } },
  { name: "redirect to file:", call: () => client.request(cap, apiUrl("/v1/redirect?to=file:///etc/passwd")), error: InvalidInput, says: /redirected \(302\).*only http: and https:/, io: { untouched: () => [internal] } },
  { name: "redirect loop", call: () => client.request(cap, apiUrl("/v1/loop")), error: LimitExceeded, says: /maxRedirects \(3\)/, io: { untouched: () => [internal] } },
  // Spellings that lenient servers decode once more than the URL standard, into a path outside the grant
  { name: "..%3B segment (Tomcat decodes it to ..;)", call: () => postPublic("/api/public/..%3B/admin"), error: InvalidInput, says: /decode into a dot segment/, io: "none" },
  { name: "..%3b segment with parameters, lower case", call: () => postPublic("/api/public/..%3bjsessionid=x/admin"), error: InvalidInput, says: /decode into a dot segment/, io: "none" },
  { name: "%u002e%u002e segment (IIS %u escapes)", call: () => postPublic("/api/public/%u002e%u002e/admin"), error: InvalidInput, says: /decode into a dot segment/, io: "none" },
  { name: "double-encoded dots", call: () => postPublic("/api/public/%252e%252e/admin"), error: InvalidInput, says: /decode into a dot segment/, io: "none" },
  { name: "double-encoded slash", call: () => postPublic("/api/public%252F..%252Fadmin"), error: InvalidInput, says: /decode into a dot segment or a separator/, io: "none" },
  { name: "full-width dots", call: () => postPublic("/api/public/%EF%BC%8E%EF%BC%8E/admin"), error: InvalidInput, says: /decode into a dot segment/, io: "none" },
  // Headers that make a server act on another path or method
  ...REWRITE_HEADERS.map(([header, value]): Attempt => ({
    name: `${header} header`,
    call: () => postPublic("/api/public", { [header]: value }),
    error: InvalidInput,
    says: new RegExp(`"${header}" makes common servers act on another path or method`),
    io: "none",
  })),
  // Headers and bodies that would change where or how bytes travel
  { name: "Host header override", call: () => client.request(cap, apiUrl("/v1/ok"), { headers: { Host: "internal.example.test" } }), error: InvalidInput, says: /"Host" is set by agentcap/, io: "none" },
  { name: "CRLF in a header value", call: () => client.request(cap, apiUrl("/v1/ok"), { headers: { "x-a": "1\r\nHost: internal" } }), error: InvalidInput, says: /not a valid header/, io: "none" },
  { name: "Transfer-Encoding header (request smuggling)", call: () => client.request(cap, apiUrl("/v1/ok"), { method: "POST", body: "x", headers: { "Transfer-Encoding": "chunked" } }), error: InvalidInput, says: /set by agentcap/, io: "none" },
  { name: "Proxy-Authorization header", call: () => client.request(cap, apiUrl("/v1/ok"), { headers: { "proxy-authorization": "x" } }), error: InvalidInput, says: /set by agentcap/, io: "none" },
  { name: "the same header twice in different case", call: () => client.request(cap, apiUrl("/v1/ok"), { headers: { Accept: "a", accept: "b" } }), error: InvalidInput, says: /given twice/, io: "none" },
  { name: "body on a GET", call: () => client.request(cap, apiUrl("/v1/ok"), { body: "x" }), error: InvalidInput, says: /GET request cannot have a body/, io: "none" },
  { name: "misspelt option", call: () => client.request(cap, apiUrl("/v1/ok"), { methd: "POST" } as never), error: InvalidInput, says: /unknown option "methd"/, io: "none" },
  // Limits
  { name: "response larger than maxResponseBytes (Content-Length)", call: () => client.request(cap, apiUrl("/v1/big?bytes=100000")), error: LimitExceeded, says: /Content-Length 100000.*maxResponseBytes/, io: { untouched: () => [internal] } },
  { name: "chunked response growing past maxResponseBytes", call: () => client.request(cap, apiUrl("/v1/chunked?bytes=100000")), error: LimitExceeded, says: /maxResponseBytes, 65536 bytes/, io: { untouched: () => [internal] } },
  { name: "server that never answers", call: () => client.request(cap, apiUrl("/v1/slow")), error: LimitExceeded, says: /did not complete within timeoutMs, 1000 ms/, io: { untouched: () => [internal] } },
  // Capabilities that are not what they seem
  { name: "a look-alike object instead of a capability", call: () => client.request({} as never, apiUrl("/v1/ok")), error: NotACapability, says: /expected a capability/, io: "none" },
  { name: "a structuredClone of a capability", call: () => client.request(structuredClone(cap), apiUrl("/v1/ok")), error: NotACapability, says: /expected a capability/, io: "none" },
  {
    name: "a revoked capability",
    call: () => {
      const r = revocable(cap);
      r.revoke("task finished");
      return client.request(r.capability, apiUrl("/v1/ok"));
    },
    error: Revoked,
    says: /task finished/,
    io: "none",
  },
  {
    name: "an expired capability",
    call: () => {
      const clock = createManualClock(0);
      const c = createMint({ issuer: "t", clock, policy: () => ({ ...grant(), expiresAt: 1000 }) }).issue({ id: "a" });
      clock.set(1000);
      return client.request(c, apiUrl("/v1/ok"));
    },
    error: Expired,
    says: /expired/,
    io: "none",
  },
  {
    name: "a single-use capability used twice",
    call: async () => {
      const once = restrict(cap, { maxUses: 1 });
      await client.request(once, apiUrl("/v1/ok"));
      return client.request(once, apiUrl("/v1/ok"));
    },
    error: BudgetExhausted,
    says: /single-use/,
    io: { untouched: () => [internal] },
  },
  { name: "a narrowed capability without the origin its parent has", call: () => client.request(narrow(cap, { http: [{ origin: `http://127.0.0.2:${P}`, methods: ["GET"] }] }), apiUrl("/v1/ok")), error: CapabilityDenied, says: /link 1/, io: "none" },
  { name: "a tenant-confined capability used without a tenant", call: () => client.request(restrict(cap, { tenants: ["acme"] }), apiUrl("/v1/ok")), error: CapabilityDenied, says: /names no tenant/, io: "none" },
];

interface Counts {
  readonly connections: number;
  readonly requests: number;
  readonly attempts: number;
  readonly dns: number;
}

function counts(servers: readonly TestServer[]): Counts {
  return {
    connections: servers.reduce((n, s) => n + s.connections(), 0),
    requests: servers.reduce((n, s) => n + s.requests.length, 0),
    attempts: guard.targets.length,
    dns: resolver.calls.length,
  };
}

describe("confined HTTP client: bypass attempts", () => {
  it("has at least 30 of them", () => {
    expect(attempts.length).toBeGreaterThanOrEqual(30);
  });

  it.each(attempts)("$name → $error.name", async ({ call, error, says, io }) => {
    const watched = () => (typeof io === "object" ? io.untouched() : all);
    const before = counts(watched());
    const failure: unknown = await call().then(
      () => new Error("the call succeeded"),
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(error);
    expect((failure as Error).message).toMatch(says);
    const after = counts(watched());
    // No new connection, request or connection attempt on the servers that must stay untouched.
    expect({ connections: after.connections, requests: after.requests }).toEqual({ connections: before.connections, requests: before.requests });
    if (io === "none") expect({ attempts: after.attempts, dns: after.dns }).toEqual({ attempts: before.attempts, dns: before.dns });
    if (io === "dns only") {
      expect(after.attempts).toBe(before.attempts);
      expect(after.dns).toBe(before.dns + 1);
    }
  });

  it("sent the internet stand-in only what the rows allowed", () => {
    expect(publicHost.requests.map((r) => r.headers.host)).toEqual([`rebind.example.test:${P}`, `public.example.test:${P}`]);
  });
});

describe("address ranges let through exactly what they name", () => {
  it("a name resolving inside its rule's ranges is reached at the checked address, and a range held by every link is enough", async () => {
    const before = internal.requests.length;
    const response = await client.request(rangedCap(), named("ranged"));
    expect(response.status).toBe(200);
    expect(text(response.body)).toBe("hello from 127.0.0.3/v1/ok");
    const narrowed = narrow(rangedCap(), { http: [{ origin: `http://ranged.example.test:${P}`, methods: ["GET"], addresses: ["127.0.0.0/30"] }] });
    expect((await client.request(narrowed, named("ranged"))).status).toBe(200);
    expect(internal.requests.length).toBe(before + 2);
    expect((await client.request(rangedCap(), `http://127.0.0.2:${P}/v1/ok`)).status).toBe(200);
  });
});

describe("property: a POST granted on /api/public reaches a server only as a POST to /api/public", () => {
  const SEGMENTS = [
    "ok", "ok", "ok", "ok", "admin", "", ".", "..", "..;", "..%3B", "..%3b", "%2e%2e", ".%2e", "%252e%252e", "%u002e%u002e", "%EF%BC%8E%EF%BC%8E",
    "%2F", "%252F", "%5C", "a%3Bb", "x;y", "%00",
  ];
  const HEADERS: readonly [string, string][] = [...REWRITE_HEADERS, ["X-Request-Id", "7"], ["Accept", "*/*"]];
  const METHODS = ["POST", "POST", "POST", "GET", "PUT", "DELETE"] as const;
  const REWRITES = new Set(REWRITE_HEADERS.map(([h]) => h.toLowerCase()));

  it("for any path segments, headers and method: refused with no I/O at all, or sent as granted", async () => {
    const publicPost = capWith({ http: [{ origin: `http://api.example.test:${P}`, methods: ["POST"], pathPrefix: "/api/public", allowPrivateNetwork: true }] });
    let refused = 0;
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 4 }),
        fc.option(fc.constantFrom(...HEADERS), { freq: 2 }),
        fc.constantFrom(...METHODS),
        async (segments, header, method) => {
          const before = counts(all);
          const seenBefore = api.requests.length;
          const outcome: unknown = await client
            .request(publicPost as never, apiUrl(`/api/public/${segments.join("/")}`), {
              method,
              headers: header === null ? {} : Object.fromEntries([header]),
              ...(method === "GET" ? {} : { body: "x" }),
            })
            .then(
              () => null,
              (e: unknown) => e,
            );
          const after = counts(all);
          if (outcome !== null) {
            expect([CapabilityDenied, InvalidInput].some((type) => outcome instanceof type)).toBe(true);
            // Refused: no DNS query, no connection attempt, nothing on any server.
            expect(after).toEqual(before);
            refused += 1;
            return;
          }
          sent += 1;
          expect(api.requests.length).toBe(seenBefore + 1);
          const seen = api.requests.at(-1);
          expect(seen?.method).toBe("POST");
          const seenPath = new URL(seen?.url ?? "", "http://x").pathname;
          expect(seenPath === "/api/public" || seenPath.startsWith("/api/public/")).toBe(true);
          for (const segment of seenPath.split("/")) {
            const once = decodeURIComponent(segment);
            expect(once === "." || once === ".." || /^\.\.?;/.test(once)).toBe(false);
            expect(segment).not.toMatch(/%u|%25|%ef%bc%8e/i);
          }
          expect(Object.keys(seen?.headers ?? {}).filter((h) => REWRITES.has(h))).toEqual([]);
        },
      ),
      { numRuns: 200 },
    );
    // Both kinds of outcome were seen, so the property said something about each.
    expect(refused).toBeGreaterThan(30);
    expect(sent).toBeGreaterThan(3);
  });
});
