import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ReadableSpan } from "@opentelemetry/sdk-trace";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createMint, SPAN_ATTRIBUTES as A, type Capability } from "../../src/index.ts";
import { createHttpClient, type HttpClient } from "../../src/resources/http/client.ts";
import { createSqlDatabase, type SqlDatabase } from "../../src/resources/sql/database.ts";
import { createDispatcher, databaseTools, defineTool, type Dispatcher } from "../../src/tools/index.ts";
import { generateVaultKey, openSqliteTokenStore, openSqliteVault, parseVaultKey, type CredentialVault, type TokenStore } from "../../src/token/index.ts";
import { exportedText, isChildOf, recordSpans, type RecordedSpans } from "../support/tracing.ts";
import { memorySink } from "../tools/memory-sink.ts";
import { installNetworkGuard, startServers, tableResolver, type TestServer } from "./http-fixtures.ts";
import { ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * What a span must never carry, tried: a query reads a customer whose email
 * the grant only shows masked, another filters by a field the grant denies,
 * and a tool calls an API with the caller's credential from the vault and
 * an argument of the call in its query string. Every exported
 * span, with its attributes, events, links, status and resource, is then
 * searched for the raw values, the credential and the call's arguments.
 */

const CREDENTIAL = "Bearer vault-held-secret-4c9e1f";
const RAW_EMAIL = "ada@example.com";
const HIDDEN_NOTE = "owes us money";
const ARGUMENT = "customer-lookup-reason-71d2";

let recorded: RecordedSpans;
let harness: Harness;
let database: SqlDatabase;
let servers: { servers: TestServer[]; port: number; close: () => Promise<void> };
let guard: ReturnType<typeof installNetworkGuard>;
let dir: string;
let store: TokenStore;
let vault: CredentialVault;
let client: HttpClient;
let dispatcher: Dispatcher;
let cap: Capability;

const apiOrigin = () => `http://api.example.test:${servers.port}`;

beforeAll(async () => {
  recorded = recordSpans();
  const sqlite = ENGINES.find((e) => e.name === "sqlite");
  if (sqlite === undefined) throw new Error("no SQLite fixture");
  harness = await sqlite.open();
  await harness.reset();
  const sink = memorySink();
  database = createSqlDatabase({ schema: SCHEMA, ...harness.connection, audit: sink });
  servers = await startServers(["127.0.0.2"]);
  guard = installNetworkGuard({});
  dir = mkdtempSync(path.join(tmpdir(), "agentcap-tracing-secrets-"));
  store = openSqliteTokenStore(path.join(dir, "tokens.db"));
  vault = openSqliteVault(path.join(dir, "tokens.db"), { key: parseVaultKey(generateVaultKey(), "test"), revocations: store });
  await vault.set("alice", apiOrigin(), CREDENTIAL);
  client = createHttpClient({ resolver: tableResolver({ "api.example.test": ["127.0.0.2"] }), timeoutMs: 2000, audit: sink, credentials: vault });

  const notify = defineTool(
    {
      name: "notify",
      description: "Tells the API why a customer was looked up.",
      input: z.object({ reason: z.string() }),
      needs: () => [{ action: "http.request", method: "GET", url: `${apiOrigin()}/v1/customers` }],
    },
    async ({ reason }, c) => (await client.request(c as never, `${apiOrigin()}/v1/customers?reason=${encodeURIComponent(reason)}`)).status,
  );
  dispatcher = createDispatcher({ tools: [databaseTools(database, SCHEMA).query, notify], audit: sink });
  const grant = {
    tools: ["db_query", "notify"],
    db: [{ model: "Customer", ops: ["read" as const], scope: { tenantId: 42 }, fieldActions: { email: { mask: "{first2}***{last4}" }, secretNote: "deny" as const } }],
    http: [{ origin: apiOrigin(), methods: ["GET" as const], pathPrefix: "/v1/", allowPrivateNetwork: true }],
  };
  cap = createMint({ issuer: "tracing-secrets", policy: () => grant, revocations: store }).issue({ id: "alice" });
});

afterAll(async () => {
  await recorded.stop();
  client.close();
  guard.restore();
  await servers.close();
  await vault.close();
  await store.close();
  await harness.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("spans never carry values, credentials or arguments", () => {
  it("a masked field's value, a denied field's value and a vault credential appear in no exported span", async () => {
    const rows = await dispatcher.call("db_query", { model: "Customer", fields: ["id", "email"], where: { id: 1 } }, cap);
    // The email came back masked; filtering on the hidden field to learn it is refused.
    expect(rows).toEqual([{ id: 1, email: "ad***.com" }]);
    await expect(dispatcher.call("db_query", { model: "Customer", fields: ["id"], where: { secretNote: HIDDEN_NOTE } }, cap)).rejects.toMatchObject({ code: "ERR_CAPABILITY_DENIED" });
    expect(await dispatcher.call("notify", { reason: ARGUMENT }, cap)).toBe(200);
    expect(servers.servers[0]?.requests.at(-1)?.headers.authorization).toBe(CREDENTIAL);

    const spans = recorded.spans();
    const [allowed, probe] = spans.filter((s) => s.name === "execute_tool db_query");
    expect(allowed?.attributes[A.decision]).toBe("allow");
    expect(probe?.attributes).toMatchObject({ [A.decision]: "deny", [A.decisionAction]: "db.read" });
    expect(isChildOf(recorded.one("db.read"), allowed as ReadableSpan)).toBe(true);
    const request = recorded.one("http.request");
    expect(isChildOf(request, recorded.one("execute_tool notify"))).toBe(true);
    expect(request.attributes).toMatchObject({ [A.resourceKind]: "http", [A.resourceOperation]: "http.request", [A.decision]: "allow", [A.principal]: "alice" });

    const text = exportedText(spans);
    for (const secret of [RAW_EMAIL, "ada@", HIDDEN_NOTE, CREDENTIAL, CREDENTIAL.slice("Bearer ".length), ARGUMENT, "api.example.test", "/v1/customers"]) {
      expect(text).not.toContain(secret);
    }
  });
});
