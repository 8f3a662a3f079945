import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidInput, Revoked } from "../../src/kernel/errors.ts";
import { registerTokenCommand } from "../../src/cli/token-command.ts";

const dir = mkdtempSync(join(tmpdir(), "agentcap-cli-"));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});
const file = (name: string, data: unknown) => {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(data));
  return path;
};

/** Runs `agentcap token …` in-process; returns what it printed and the exit code it set. */
async function run(...args: string[]): Promise<{ lines: string[]; code: number }> {
  const lines: string[] = [];
  let code = 0;
  const program = new Command("agentcap").exitOverride();
  registerTokenCommand(program, { out: (t) => lines.push(...t.split("\n")), setExitCode: (c) => (code = c) });
  await program.parseAsync(["token", ...args], { from: "user" });
  return { lines, code };
}

describe("agentcap token", () => {
  it("keygen, mint, attenuate offline, inspect, verify, revoke", async () => {
    const key = join(dir, "key.json");
    const pub = join(dir, "public.json");
    const store = join(dir, "tokens.db");
    const { lines: keyLines } = await run("keygen", "--out", key, "--key-id", "3");
    writeFileSync(pub, keyLines.join("\n"));
    expect(JSON.parse(keyLines.join("\n"))).toHaveProperty("3");

    const grant = file("grant.json", { tools: ["search", "read_file"], fs: [{ path: "/srv/data", ops: ["read"] }] });
    const root = (await run("mint", "--key", key, "--principal", "alice", "--grant", grant, "--tenant", "acme", "--store", store)).lines[0] ?? "";
    const narrow = file("narrow.json", { tools: ["search"], expiresAt: Date.now() + 3_600_000 });
    const child = (await run("attenuate", "--token", root, "--grant", narrow, "--public-keys", pub)).lines[0] ?? "";
    const tokenFile = join(dir, "child.token");
    writeFileSync(tokenFile, child);

    const inspected = (await run("inspect", "--token", `@${tokenFile}`, "--public-keys", pub)).lines;
    expect(inspected.join("\n")).toMatch(/block 0: root link .*\n {2}minted for alice by agentcap-cli \(key id 3\)/);
    expect(inspected.join("\n")).toMatch(/block 1: narrow link[\s\S]*tools: search\n {2}expires 20/);
    expect(inspected.filter((l) => l.includes("revocation id"))).toHaveLength(2);

    const allowed = file("allowed.json", { action: "tool.call", tool: "search" });
    const denied = file("denied.json", { action: "tool.call", tool: "read_file" });
    expect(await run("verify", "--token", child, "--public-keys", pub, "--request", allowed, "--store", store)).toEqual({ lines: ["allowed"], code: 0 });
    const no = await run("verify", "--token", child, "--public-keys", pub, "--request", denied, "--store", store);
    expect(no.code).toBe(2);
    expect(no.lines[0]).toMatch(/^denied by block 1 .* rule tools: .*does not grant tool "read_file"/);

    expect((await run("revoke", "--token", root, "--public-keys", pub, "--store", store, "--reason", "alice left")).lines).toEqual(["revoked"]);
    await expect(run("verify", "--token", child, "--public-keys", pub, "--request", allowed, "--store", store)).rejects.toThrow(Revoked);
  });

  it("bad input gets a typed error naming the problem", async () => {
    await expect(run("mint", "--key", join(dir, "missing.json"), "--principal", "a", "--grant", "x")).rejects.toThrow(InvalidInput);
    await expect(run("revoke", "--store", join(dir, "t.db"))).rejects.toThrow(/exactly one of/);
    await expect(run("keygen", "--out", join(dir, "k.json"), "--key-id", "-1")).rejects.toThrow(/non-negative integer/);
  });
});
