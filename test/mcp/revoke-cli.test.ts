import path from "node:path";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerAuditCommand } from "../../src/cli/audit-command.ts";
import { registerRevokeCommand } from "../../src/cli/revoke-command.ts";
import { InvalidInput, Revoked } from "../../src/kernel/errors.ts";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { makeFixture, type Fixture } from "./support.ts";

/* `agentcap revoke --config …` acting on a gateway's stores while the gateway runs, and `audit query --revoked` listing what it did. */

let fixture: Fixture;
let gateway: Gateway;

beforeAll(async () => {
  fixture = makeFixture();
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
});

afterAll(async () => {
  await gateway.close();
  fixture.cleanup();
});

async function agentcap(...args: string[]): Promise<string> {
  let out = "";
  const program = new Command("agentcap").exitOverride();
  registerRevokeCommand(program, { out: (line) => (out += `${line}\n`) });
  registerAuditCommand(program, { out: (text) => (out += text), setExitCode: () => undefined });
  await program.parseAsync(args, { from: "user" });
  return out;
}

describe("agentcap revoke", () => {
  it("revokes a principal in a running gateway's store, named as the operator in its audit log; reinstate lets the mint issue again", async () => {
    const token = gateway.issueToken("alice");
    await gateway.authenticate(token, { fresh: true });
    const out = await agentcap("revoke", "--config", fixture.configFile, "--principal", "alice", "--reason", "left the company", "--by", "ops:sam");
    expect(out).toMatch(/^revoked principal alice/);
    expect(() => { gateway.inspect(token); }).toThrow(Revoked);
    expect(() => gateway.issueToken("alice")).toThrow(/reinstate/);

    const listed = await agentcap("audit", "query", "--revoked", "--store", path.join(fixture.dir, "state/audit.db"));
    expect(listed).toMatch(/ops:sam\s+-\s+revoke\s+principal alice\s+revoked \(0 cap, 0 token, 0 session\): left the c/);

    await agentcap("reinstate", "--config", fixture.configFile, "--principal", "alice");
    expect(gateway.issueToken("alice")).toMatch(/^[A-Za-z0-9_-]+/);
    expect(() => { gateway.inspect(token); }).toThrow(Revoked);
  });

  it("names what is wrong with its arguments", async () => {
    await expect(agentcap("revoke", "--config", fixture.configFile, "--reason", "x")).rejects.toThrow(/exactly one of --principal/);
    await expect(agentcap("revoke", "--config", fixture.configFile, "--principal", "a", "--role", "b", "--reason", "x")).rejects.toThrow(InvalidInput);
    await expect(agentcap("reinstate", "--config", fixture.configFile, "--session", "s")).rejects.toThrow();
    await expect(agentcap("revoke", "--config", fixture.configFile, "--principal", "a", "--reason", "x".repeat(1001))).rejects.toThrow(/at most 1000/);
  });
});
