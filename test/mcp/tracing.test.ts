import { SpanStatusCode } from "@opentelemetry/api";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SPAN_ATTRIBUTES as A } from "../../src/index.ts";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { exportedText, isChildOf, recordSpans, type RecordedSpans } from "../support/tracing.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "./support.ts";

/*
 * One MCP tools/call through the gateway, over Streamable HTTP, with the
 * application's tracer provider and the context manager a Node application
 * registers: the call's span names the session and principal, and its file
 * read is its child.
 */

let recorded: RecordedSpans;
let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;
let client: Client;

beforeAll(async () => {
  recorded = recordSpans({ contextManager: true });
  fixture = makeFixture();
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
  ({ client } = await httpClient(http.url, gateway.issueToken("alice")));
});

afterAll(async () => {
  await client.close();
  await http.close();
  await gateway.close();
  await recorded.stop();
  fixture.cleanup();
});

describe("tools/call through the gateway", () => {
  it("an allowed call is a span with the session and principal, and its file read a child span", async () => {
    recorded.reset();
    const result = await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } });
    expect(textOf(result)).toContain("hello from the workspace");

    const call = recorded.one("execute_tool read_file");
    expect(call.attributes).toMatchObject({ [A.tool]: "read_file", [A.principal]: "alice", [A.decision]: "allow" });
    expect(call.attributes[A.session]).toEqual(expect.any(String));
    expect(call.attributes[A.auditEventId]).toEqual(expect.any(String));
    const read = recorded.one("fs.read");
    expect(isChildOf(read, call)).toBe(true);
    expect(read.attributes).toMatchObject({ [A.resourceOperation]: "fs.read", [A.tool]: "read_file", [A.decision]: "allow", [A.session]: call.attributes[A.session] });
    // The audit log holds the call under the id its span names.
    const events = await gateway.audit.query({ limit: 100 });
    expect(events.some((r) => r.event.id === call.attributes[A.auditEventId])).toBe(true);
    expect(exportedText(recorded.spans())).not.toContain("hello.txt");
  });

  it("a denied call is an error span naming the denying link", async () => {
    recorded.reset();
    const result = await client.callTool({ name: "read_file", arguments: { path: "private/secret.txt" } });
    expect(result.isError).toBe(true);
    const call = recorded.one("execute_tool read_file");
    expect(call.attributes).toMatchObject({ [A.decision]: "deny", [A.decisionCode]: "ERR_CAPABILITY_DENIED", [A.decisionAction]: "fs.read" });
    expect(call.attributes[A.denyingLinkId]).toEqual(expect.any(String));
    expect(call.status).toEqual({ code: SpanStatusCode.ERROR, message: "ERR_CAPABILITY_DENIED" });
    expect(exportedText(recorded.spans())).not.toContain("secret");
  });
});
