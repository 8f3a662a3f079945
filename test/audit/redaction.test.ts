import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { compileRedaction, REDACTED } from "../../src/audit/redaction.ts";
import type { AuditStore } from "../../src/audit/store.ts";
import { authorize, createMint, narrow, type Capability, type Grant, type Request } from "../../src/index.ts";
import { audited } from "../../src/resources/audited.ts";
import { defineTool } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { eachKit, type StoreKit } from "./fixtures.ts";

/*
 * Secrets stay out of the log: an adversarial table of command lines and
 * URLs that carry credentials, each with what the log may keep of it; and
 * the grants of lineage links, which the dispatcher derives from the very
 * same requests, follow the same policy.
 */

const redact = compileRedaction();
const argv = (args: readonly string[], program = "/usr/bin/curl") => redact.request({ action: "exec", argv: [program, ...args], cwd: "/tmp" }).request.argv;
const url = (u: string) => redact.request({ action: "http.request", method: "GET", url: u }).request.url;

/** [what, program, arguments, the secret that must go, what must stay (the redacted arguments)] */
const ARGV: readonly (readonly [string, string, readonly string[], string, readonly string[]])[] = [
  ["mysql password glued to -p", "/usr/bin/mysql", ["-u", "root", "-pS3cretPW", "app"], "S3cretPW", ["-u", "root", `-p${REDACTED}`, "app"]],
  ["mysqldump password glued to -p", "/usr/bin/mysqldump", ["-pHunter2!", "db"], "Hunter2!", [`-p${REDACTED}`, "db"]],
  ["sshpass -p password", "/usr/bin/sshpass", ["-p", "s3cr3tpass", "ssh", "host"], "s3cr3tpass", ["-p", REDACTED, "ssh", "host"]],
  ["curl -u user:password", "/usr/bin/curl", ["-u", "alice:pa55word", "https://h.test/"], "pa55word", ["-u", `alice:${REDACTED}`, "https://h.test/"]],
  ["curl -u glued", "/usr/bin/curl", ["-ualice:pa55word"], "pa55word", [`-ualice:${REDACTED}`]],
  ["curl --user user:password", "/usr/bin/curl", ["--user", "bob:letmein99"], "letmein99", ["--user", `bob:${REDACTED}`]],
  ["curl --user=user:password", "/usr/bin/curl", ["--user=bob:letmein99"], "letmein99", [`--user=bob:${REDACTED}`]],
  ["curl --proxy-user", "/usr/bin/curl", ["--proxy-user", "p:proxypass1"], "proxypass1", ["--proxy-user", `p:${REDACTED}`]],
  ["postgres URL with a password", "/usr/bin/psql", ["postgres://u:pw-9x8y@db.internal:5432/app"], "pw-9x8y", [`postgres://${REDACTED}@db.internal:5432/app`]],
  ["mongodb+srv URL", "/usr/bin/mongosh", ["mongodb+srv://admin:m0ng0pw@cluster0.example.net/db"], "m0ng0pw", [`mongodb+srv://${REDACTED}@cluster0.example.net/db`]],
  ["redis URL with only a password", "/usr/bin/redis-cli", ["-u", "redis://:r3d1spass@cache:6379"], "r3d1spass", ["-u", `redis://${REDACTED}@cache:6379`]],
  ["https URL whose password holds @", "/usr/bin/curl", ["https://u:p@ss@host.test/x"], "p@ss", [`https://${REDACTED}@host.test/x`]],
  ["git URL with a token as the user", "/usr/bin/git", ["clone", "https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r.git"], "ghp_abcdefghijklmnopqrstuvwxyz0123", ["clone", `https://${REDACTED}@github.com/o/r.git`]],
  ["jdbc URL with a password parameter", "/usr/bin/java", ["jdbc:mysql://db/app?user=app&password=jdbcpw77"], "jdbcpw77", [`jdbc:mysql://db/app?user=${REDACTED}&password=${REDACTED}`]],
  ["a token in a query string", "/usr/bin/curl", ["https://api.test/v1?access_token=tok3n-abc&page=2"], "tok3n-abc", [`https://api.test/v1?access_token=${REDACTED}&page=${REDACTED}`]],
  ["an Authorization header after -H", "/usr/bin/curl", ["-H", "Authorization: Bearer eyJabc.def.ghi-verysecret"], "eyJabc.def.ghi-verysecret", ["-H", `Authorization: Bearer ${REDACTED}`]],
  ["an Authorization header glued to -H", "/usr/bin/curl", ["-HAuthorization: Basic dXNlcjpwYXNz"], "dXNlcjpwYXNz", [`-HAuthorization: Basic ${REDACTED}`]],
  ["a header as --header=…", "/usr/bin/curl", ["--header=X-Api-Key: k3y-12345"], "k3y-12345", [`--header=X-Api-Key: ${REDACTED}`]],
  ["a Cookie header", "/usr/bin/curl", ["-H", "Cookie: session=abcd1234efgh"], "abcd1234efgh", ["-H", `Cookie: ${REDACTED}`]],
  ["a Proxy-Authorization header", "/usr/bin/curl", ["--proxy-header", "Proxy-Authorization: Basic cHJveHk6cHc="], "cHJveHk6cHc=", ["--proxy-header", `Proxy-Authorization: Basic ${REDACTED}`]],
  ["--password=value", "/usr/bin/tool", ["--password=pa$$w0rd"], "pa$$w0rd", [`--password=${REDACTED}`]],
  ["--password value", "/usr/bin/tool", ["--password", "pa$$w0rd"], "pa$$w0rd", ["--password", REDACTED]],
  ["--api-key value", "/usr/bin/tool", ["--api-key", "AKIAABCDEFGHIJKLMNOP"], "AKIAABCDEFGHIJKLMNOP", ["--api-key", REDACTED]],
  ["--client-secret=value", "/usr/bin/tool", ["--client-secret=cl1ents3cret"], "cl1ents3cret", [`--client-secret=${REDACTED}`]],
  ["an environment assignment", "/usr/bin/env", ["PGPASSWORD=envpw123", "psql"], "envpw123", [`PGPASSWORD=${REDACTED}`, "psql"]],
  ["docker -e NAME=value", "/usr/bin/docker", ["run", "-e", "DB_PASSWORD=dock3rpw", "img"], "dock3rpw", ["run", "-e", `DB_PASSWORD=${REDACTED}`, "img"]],
  ["docker --env=NAME=value", "/usr/bin/docker", ["run", "--env=API_TOKEN=t0k3n42", "img"], "t0k3n42", ["run", `--env=API_TOKEN=${REDACTED}`, "img"]],
  ["a libpq connection string", "/usr/bin/psql", ["host=db user=app password=libpqpw1 dbname=app"], "libpqpw1", [`host=db user=app password=${REDACTED} dbname=app`]],
  ["an ADO.NET connection string", "/usr/bin/sqlcmd", ["Server=db;User Id=sa;Password=AdoPass!9;"], "AdoPass!9", [`Server=db;User Id=sa;Password=${REDACTED};`]],
  ["an OpenSSL pass: argument", "/usr/bin/openssl", ["pkcs12", "-passin", "pass:ssl-pw-42"], "ssl-pw-42", ["pkcs12", "-passin", `pass:${REDACTED}`]],
  ["a URL inside an assignment", "/usr/bin/tool", ["--url=https://u:inurlpw@h.test/"], "inurlpw", [`--url=https://${REDACTED}@h.test/`]],
  ["a GitHub token on its own", "/usr/bin/gh", ["auth", "login", "--with-token", "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"], "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", ["auth", "login", "--with-token", REDACTED]],
  ["an OpenAI-style key inside text", "/usr/bin/tool", ["use sk-proj1234567890abcdefghij now"], "sk-proj1234567890abcdefghij", [`use ${REDACTED} now`]],
  ["a Slack token inside text", "/usr/bin/tool", ["xoxb-1234567890-abcdefghij"], "xoxb-1234567890-abcdefghij", [REDACTED]],
  ["a bearer credential inside text", "/usr/bin/tool", ["send Bearer abcdef123456 upstream"], "abcdef123456", [`send Bearer ${REDACTED} upstream`]],
];

describe("argument redaction: credentials in command lines", () => {
  it.each(ARGV)("%s", (_what, program, args, secret, kept) => {
    const out = argv(args, program) as string[];
    expect(out).toEqual([program, ...kept]);
    expect(JSON.stringify(out)).not.toContain(secret);
  });

  it("keeps what an investigation needs: flags, plain values, paths, hosts", () => {
    expect(argv(["-s", "-o", "/tmp/out.json", "--retry", "3", "https://api.test/v1/items"])).toEqual(["/usr/bin/curl", "-s", "-o", "/tmp/out.json", "--retry", "3", "https://api.test/v1/items"]);
    expect(argv(["-p", "8080"], "/usr/bin/python3")).toEqual(["/usr/bin/python3", "-p", "8080"]);
  });
});

describe("URL redaction in HTTP requests", () => {
  it.each([
    ["https://api.test/x?token=abc123&q=1", `https://api.test/x?token=${REDACTED}&q=${REDACTED}`],
    ["https://api.test/x?X-Amz-Signature=deadbeef#frag", `https://api.test/x?X-Amz-Signature=${REDACTED}`],
    ["https://api.test/x?bare-credential-value", `https://api.test/x?${REDACTED}`],
    ["https://api.test/plain/path", "https://api.test/plain/path"],
  ])("%s", (input, expected) => {
    expect(url(input)).toBe(expected);
  });
});

describe("keyed redaction", () => {
  it("hides values with an HMAC when given a key, so equal values still match and different ones do not", () => {
    const keyed = compileRedaction({ valueKey: "a-secret-of-32-bytes-kept-apart!" });
    const scope = (email: string) => keyed.request({ action: "db.read", model: "Customer", fields: ["name"], scope: { email } }).request.scope as Record<string, string>;
    const [a, b, c] = [scope("carol@example.com"), scope("carol@example.com"), scope("dave@example.com")];
    expect(a.email).toMatch(/^\[redacted:[0-9a-f]{16}\]$/);
    expect(a.email).toBe(b.email);
    expect(a.email).not.toBe(c.email);
    const other = compileRedaction({ valueKey: "another-secret-of-32-bytes-here!" });
    expect(other.request({ action: "db.read", model: "Customer", fields: ["name"], scope: { email: "carol@example.com" } }).request.scope).not.toEqual({ email: a.email });
  });

  it("refuses a key shorter than 16 bytes", () => {
    expect(() => compileRedaction({ valueKey: "short" })).toThrow(/valueKey: must hold at least 16 bytes/);
  });
});

eachKit("audit store: lineage grants follow the redaction policy", ({ make }) => {
  let kit: StoreKit;
  let store: AuditStore;
  beforeAll(async () => {
    kit = make();
    store = await kit.open();
  });
  afterAll(async () => {
    await kit.cleanup();
  });

  it("keeps the values of needs-derived grants (a password argument, a row's key, a filter's e-mail) out of the stored links", async () => {
    const root: Grant = {
      tools: ["run_command", "db_create", "db_query"],
      exec: [{ program: "/usr/bin/mysql" }],
      db: [{ model: "Customer", ops: ["create", "read"] }],
    };
    const cap = createMint({ issuer: "redaction-test", policy: () => root }).issue({ id: "alice" });
    // Each handler acts as a resource would: an access recorded under the handler's capability, whose last link is the needs' grant.
    const act = (c: Capability, request: Request) =>
      audited(
        store,
        c,
        async (access) => {
          access.decided(request, authorize(c, request));
          await access.proceed();
          return "done";
        },
        () => 4,
      );
    const runCommand = defineTool(
      { name: "run_command", description: "Runs mysql.", input: z.object({ args: z.array(z.string()) }), needs: ({ args }) => [{ action: "exec", argv: ["/usr/bin/mysql", ...args], cwd: "/" }] },
      ({ args }, c) => act(c, { action: "exec", argv: ["/usr/bin/mysql", ...args], cwd: "/" }),
    );
    const dbCreate = defineTool(
      {
        name: "db_create",
        description: "Creates a customer.",
        input: z.object({ apiKey: z.string() }),
        needs: ({ apiKey }) => [{ action: "db.create", model: "Customer", fields: ["apiKey"], scope: { apiKey } }],
      },
      ({ apiKey }, c) => act(c, { action: "db.create", model: "Customer", fields: ["apiKey"], scope: { apiKey } }),
    );
    const dbQuery = defineTool(
      {
        name: "db_query",
        description: "Finds a customer by e-mail.",
        input: z.object({ email: z.string() }),
        needs: ({ email }) => [{ action: "db.read", model: "Customer", fields: ["name"], scope: { email } }],
      },
      ({ email }, c) => act(c, { action: "db.read", model: "Customer", fields: ["name"], scope: { email } }),
    );
    const dispatcher = createDispatcher({ tools: [runCommand, dbCreate, dbQuery], audit: store });
    await dispatcher.call("run_command", { args: ["--password=MyS3cretPW", "-pGluedPW99", "app"] }, cap);
    await dispatcher.call("db_create", { apiKey: "sk-live-0123456789abcdef" }, cap);
    await dispatcher.call("db_query", { email: "carol@example.com" }, cap);
    const stored = [...(await kit.raw("SELECT summary FROM audit_links")), ...(await kit.raw("SELECT body FROM audit_events"))].map((r) => JSON.stringify(r)).join("\n");
    for (const secret of ["MyS3cretPW", "GluedPW99", "sk-live-0123456789abcdef", "carol@example.com"]) expect(stored).not.toContain(secret);
    // What the grants name stays: the program, the model, the field names.
    expect(stored).toContain("/usr/bin/mysql");
    expect(stored).toContain("apiKey");
    const [query] = await store.query({ tool: "db_query", action: "db.read" });
    expect(query?.event.subject.lineage.some((l) => JSON.stringify(l.grant).includes(`"email":"${REDACTED}"`))).toBe(true);
    expect((await store.verify()).ok).toBe(true);
    // A narrowing of its own, with the same kind of values, is redacted alike.
    expect(JSON.stringify(redact.linkText(narrow(cap, { exec: [{ program: "/usr/bin/mysql", args: ["-pInLinkPW1"] }] }).lineage.at(-1)))).not.toContain("InLinkPW1");
  });
});
