import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSignerKey } from "../../src/audit/checkpoint.ts";
import { linesFromOtlp } from "../../src/audit/otlp.ts";
import { verifyStream } from "../../src/audit/stream-verifier.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { loadGatewayConfig, parseGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway } from "../../src/mcp/gateway.ts";
import { makeFixture } from "./support.ts";

/* A gateway configured with audit.otlp streams its log to a collector (here one on 127.0.0.1) as it writes it. */

const bodies: string[] = [];
const collector = createServer((req, res) => {
  let text = "";
  req.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
  req.on("end", () => {
    bodies.push(...linesFromOtlp([text]));
    res.writeHead(200).end("{}");
  });
});
let endpoint = "";

beforeAll(async () => {
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${String((collector.address() as AddressInfo).port)}/v1/logs`;
});
afterAll(async () => {
  await new Promise((resolve) => collector.close(resolve));
});

describe("gateway config: audit.otlp", () => {
  it("streams every audit entry and checkpoint to the collector; the copy verifies with the checkpoint key's public half", async () => {
    const fixture = makeFixture({
      audit: { kind: "sqlite", path: "state/audit.db", checkpoints: { keyFile: "secrets/audit.key", createKeyIfMissing: true, everyEntries: 1 }, otlp: { endpoint, maxQueue: 1000 } },
    });
    const gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
    // Giving up a token is recorded in the audit log.
    await gateway.revoke(gateway.issueToken("alice"));
    await gateway.revoke(gateway.issueToken("bob"));
    await gateway.close();
    expect(gateway.auditStream()).toMatchObject({ queued: 0, dropped: 0 });
    expect(gateway.auditStream()?.sent).toBe(bodies.length);
    const key = parseSignerKey(readFileSync(path.join(fixture.dir, "secrets/audit.key"), "utf8")).verifierKey;
    const verdict = verifyStream(bodies, key);
    expect(verdict.ok).toBe(true);
    expect(verdict.ok && verdict.value.checkpoint.size).toBeGreaterThanOrEqual(2);
    fixture.cleanup();
  });

  it("names a bad endpoint or limit, and streams nowhere without it", () => {
    const fixture = makeFixture();
    const withOtlp = (otlp: unknown) => parseGatewayConfig({ ...fixture.config, audit: { kind: "sqlite", path: "state/audit.db", otlp } }, fixture.dir, {});
    expect(() => withOtlp({ endpoint: "ftp://collector/v1/logs" })).toThrow(InvalidInput);
    expect(() => withOtlp({ endpoint: "ftp://collector/v1/logs" })).toThrow(/audit\.otlp\.endpoint/);
    expect(() => withOtlp({ endpoint, maxQueue: 0 })).toThrow(/audit\.otlp\.maxQueue/);
    expect(withOtlp({ endpoint }).audit).toMatchObject({ otlp: { endpoint } });
    expect(parseGatewayConfig(fixture.config, fixture.dir, {}).audit).not.toHaveProperty("otlp");
    fixture.cleanup();
  });
});
