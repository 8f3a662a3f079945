import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpointKey } from "../../src/audit/checkpoint.ts";
import { openAuditStore } from "../../src/audit/open.ts";
import { registerAuditCommand } from "../../src/cli/audit-command.ts";
import { InvalidInput } from "../../src/index.ts";
import { databaseUrl, describePostgres } from "../support/postgres.ts";
import { eventFor, T0, world } from "./fixtures.ts";

/*
 * `agentcap audit prune --older-than`: retention by age from the command
 * line, and what verify, query, export and verify-export then say of the
 * pruned log.
 */

const DAY = 86_400_000;

async function cli(...args: string[]): Promise<{ out: string; exitCode: number | undefined }> {
  let out = "";
  let exitCode: number | undefined;
  const program = new Command("agentcap").exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  registerAuditCommand(program, { out: (s) => (out += s), setExitCode: (c) => (exitCode = c) });
  await program.parseAsync(args, { from: "user" });
  return { out, exitCode };
}

const key = generateCheckpointKey("audit.test/retention-cli");

/** Ten events, entry n (from 1) at T0 + (n - 1) days, in the log `where` names, signed with `key`. */
async function fill(where: Parameters<typeof openAuditStore>[0]): Promise<void> {
  const store = await openAuditStore(where);
  const w = world();
  for (let i = 0; i < 10; i++) await store.write(eventFor(w.alice, { action: "tool.call", tool: "search" }, { at: T0 + i * DAY }));
  await store.close();
}

describe("agentcap audit prune (SQLite)", () => {
  const dir = mkdtempSync(join(tmpdir(), "agentcap-retention-cli-"));
  const path = join(dir, "audit.db");
  const keyFile = join(dir, "audit.key");

  beforeAll(async () => {
    writeFileSync(keyFile, `${key.signerKey}\n`);
    await fill({ kind: "sqlite", path, checkpoints: { key: key.signerKey } });
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("prunes by date, and verify, query, export and verify-export show the pruned range", async () => {
    const cutoff = new Date(T0 + 4 * DAY).toISOString();
    const { out } = await cli("audit", "prune", "--store", path, "--key", keyFile, "--older-than", cutoff);
    expect(out).toBe(`pruned 4 entries (1 to 4) older than ${cutoff}; the signed retention checkpoint of size 4 records it\n`);
    expect(readFileSync(`${path}.checkpoints`, "utf8")).toContain("agentcap-retention/v1 pruned 1-4");

    const verified = await cli("audit", "verify", "--store", path, "--checkpoints", `${path}.checkpoints`, "--public-key", key.verifierKey);
    expect(verified.exitCode).toBeUndefined();
    expect(verified.out).toMatch(/^ok: 6 entries verified\n/);
    expect(verified.out).toContain(`pruned by retention: entries 1 to 4 (older than ${cutoff}), on `);
    const unsigned = await cli("audit", "verify", "--store", path);
    expect(unsigned.out).toMatch(/^ok: 6 entries verified\n(.*\n)*pruned by retention: .*unsigned/);

    const table = await cli("audit", "query", "--store", path);
    expect(table.out.split("\n").at(-2)).toMatch(/^\(entries 1 to 4, older than .*, were pruned by retention on /);
    // Machines get records only.
    const jsonl = await cli("audit", "query", "--store", path, "--format", "jsonl");
    expect(jsonl.out.trim().split("\n").map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([5, 6, 7, 8, 9, 10]);

    for (const format of ["jsonl", "otlp"]) {
      const file = join(dir, `export.${format}`);
      await cli("audit", "export", "--store", path, "--public-key", key.verifierKey, "--format", format, "--out", file);
      const checked = await cli("audit", "verify-export", file, "--public-key", key.verifierKey);
      expect(checked.exitCode).toBeUndefined();
      expect(checked.out).toMatch(/^ok: entries 5 to 10 \(6\) proved in the tree of 10 .*\nentries 1 to 4 were pruned by retention \(older than .*\), as a signed retention checkpoint records\n$/);
    }

    // Nothing older is left to prune: a clear no-op.
    const again = await cli("audit", "prune", "--store", path, "--key", keyFile, "--older-than", cutoff, "--json");
    expect(JSON.parse(again.out)).toMatchObject({ pruned: 0, upTo: 4, checkpoint: null });
    const quiet = await cli("audit", "prune", "--store", path, "--key", keyFile, "--older-than", "2000-01-01");
    expect(quiet.out).toBe("nothing to prune: no entry older than 2000-01-01T00:00:00.000Z can go (entries 1 to 4 were pruned before)\n");
  });

  it("keeps the newest entry and says why it stopped", async () => {
    const { out } = await cli("audit", "prune", "--store", path, "--key", keyFile, "--older-than", "1d");
    expect(out).toMatch(/^pruned 5 entries \(5 to 9\) .*\nkept from entry 10: entry 10 is the log's newest/);
  });

  it.each([
    [["--older-than", "0d"], /zero/],
    [["--older-than=-5d"], /negative/],
    [["--older-than", "ninety days"], /not a retention age or date/],
    [["--older-than", "2999-01-01"], /in the future/],
  ])("refuses %j with InvalidInput", async (args, message) => {
    const attempt = cli("audit", "prune", "--store", path, "--key", keyFile, ...args);
    await expect(attempt).rejects.toThrow(InvalidInput);
    await expect(cli("audit", "prune", "--store", path, "--key", keyFile, ...args)).rejects.toThrow(message);
  });

  it("refuses a prune it could not sign, or of a log that is not there", async () => {
    await expect(cli("audit", "prune", "--store", path, "--older-than", "90d")).rejects.toThrow(/give --key/);
    await expect(cli("audit", "prune", "--store", join(dir, "none.db"), "--key", keyFile, "--older-than", "90d")).rejects.toThrow(/there is no audit log/);
    await expect(cli("audit", "prune", "--store", path, "--key", join(dir, "none.key"), "--older-than", "90d")).rejects.toThrow(InvalidInput);
    await expect(cli("audit", "prune", "--database-url", "postgres://127.0.0.1:1/x", "--key", keyFile, "--older-than", "90d")).rejects.toThrow(/give --checkpoints/);
  });
});

describePostgres("agentcap audit prune (Postgres)", () => {
  const url = databaseUrl ?? "";
  const schema = `agentcap_retention_cli_${randomBytes(6).toString("hex")}`;
  const dir = mkdtempSync(join(tmpdir(), "agentcap-retention-cli-pg-"));
  const keyFile = join(dir, "audit.key");
  const checkpoints = join(dir, "audit.checkpoints");

  afterAll(async () => {
    const { default: pg } = await import("pg");
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
    rmSync(dir, { recursive: true, force: true });
  });

  it("prunes a log in a Postgres schema, which then verifies with its checkpoints", async () => {
    writeFileSync(keyFile, `${key.signerKey}\n`);
    await fill({ kind: "postgres", url, schema, checkpoints: { key: key.signerKey, sink: checkpoints } });
    const where = ["--database-url", url, "--schema", schema];
    const { out } = await cli("audit", "prune", ...where, "--key", keyFile, "--checkpoints", checkpoints, "--older-than", new Date(T0 + 3 * DAY).toISOString());
    expect(out).toMatch(/^pruned 3 entries \(1 to 3\)/);
    const verified = await cli("audit", "verify", ...where, "--checkpoints", checkpoints, "--public-key", key.verifierKey);
    expect(verified.exitCode).toBeUndefined();
    expect(verified.out).toMatch(/^ok: 7 entries verified\n(.*\n)*pruned by retention: entries 1 to 3 /);
  });
});
