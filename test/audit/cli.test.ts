import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Command, CommanderError } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditFailure } from "../../src/kernel/errors.ts";
import { openAuditStore } from "../../src/audit/open.ts";
import { registerAuditCommand } from "../../src/cli/audit-command.ts";
import { parseTimeArgument } from "../../src/cli/time-argument.ts";
import { InvalidInput } from "../../src/index.ts";
import { HOUR, scenario, T0 } from "./fixtures.ts";
import { databaseUrl, describePostgres } from "../support/postgres.ts";

interface Run {
  readonly out: string;
  readonly err: string;
  readonly exitCode: number | undefined;
}

/** Runs `agentcap <args>` in-process on a fresh program. */
async function cli(...args: string[]): Promise<Run> {
  let out = "";
  let err = "";
  let exitCode: number | undefined;
  // Output and exit settings are inherited by subcommands when they are created, so they come first.
  const program = new Command("agentcap")
    .exitOverride()
    .configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  registerAuditCommand(program, { out: (s) => (out += s), setExitCode: (c) => (exitCode = c) });
  await program.parseAsync(args, { from: "user" });
  return { out, err, exitCode };
}

const fail = (...args: string[]) => cli(...args).then(
  () => {
    throw new Error("expected the command to fail");
  },
  (e: unknown) => e,
);

describe("agentcap audit (SQLite)", () => {
  const dir = mkdtempSync(join(tmpdir(), "agentcap-audit-cli-"));
  const path = join(dir, "audit.db");
  const nameOf = new Map<string, string>();
  let s: ReturnType<typeof scenario>;

  beforeAll(async () => {
    s = scenario();
    const store = await openAuditStore({ kind: "sqlite", path });
    for (const [name, event] of s.named) {
      nameOf.set(event.id, name);
      await store.write(event);
    }
    await store.close();
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const jsonl = async (...args: string[]) => {
    const { out } = await cli("audit", "query", "--store", path, "--format", "jsonl", ...args);
    return out
      .trim()
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => nameOf.get((JSON.parse(l) as { event: { id: string } }).event.id));
  };

  it("prints matching events as an aligned table", async () => {
    const { out, exitCode } = await cli("audit", "query", "--store", path, "--principal", "alice", "--denied");
    expect(exitCode).toBeUndefined();
    const lines = out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^seq\s+time \(UTC\)\s+principal\s+tool\s+action\s+target\s+decision\s+capability$/);
    expect(lines).toHaveLength(2 + 3);
    expect(lines[2]).toMatch(/^3\s+2025-01-15 11:00:00\s+alice\s+search\s+http\.request\s+GET https:\/\/api\.example\.com\/v2\/admin\s+DENIED ERR_CAPABILITY_DENIED at link 3/);
    expect(lines[4]).toMatch(/DENIED ERR_REVOKED at link 2\s+\w{8} \(depth 3\)$/);
  });

  it("says so when nothing matches", async () => {
    expect((await cli("audit", "query", "--store", path, "--principal", "nobody")).out).toBe("no matching events\n");
  });

  it("prints JSON lines, one record per line, for each filter", async () => {
    expect(await jsonl("--descendants-of", s.w.session.capability.id, "--desc")).toEqual(["a7", "a5", "a4", "a3", "a2"]);
    expect(await jsonl("--capability-hash", s.w.searchTool.hash, "--action", "tool.call")).toEqual(["a7"]);
    expect(await jsonl("--request", "req-bob", "--tool", "run_report", "--tenant", "globex")).toEqual(["b1", "b3"]);
    expect(await jsonl("--resource-prefix", "/srv/data/", "--allowed")).toEqual(["a4", "a5"]);
    expect(await jsonl("--session", "sess-1", "--task", "task-1", "--limit", "2", "--after", "2")).toEqual(["a3", "a4"]);
    expect(await jsonl("--since", String(T0 + 2 * HOUR), "--until", new Date(T0 + 3 * HOUR).toISOString())).toEqual(["a3", "b2"]);
  });

  it("pages through everything with --all", async () => {
    expect(await jsonl("--all", "--limit", "2")).toHaveLength(11);
    const { out } = await cli("audit", "query", "--store", path, "--all", "--limit", "4");
    expect(out.trimEnd().split("\n")).toHaveLength(2 + 11);
  });

  it.each([
    [["--action", "fs.chmod"], /Allowed choices are/],
    [["--since", "last tuesday"], /"last tuesday" is not a time/],
    [["--limit", "ten"], /must be a non-negative integer/],
    [["--format", "csv"], /Allowed choices are/],
    [["--principle", "alice"], /unknown option/],
  ])("refuses %j with a usage error", async (args, message) => {
    const error = await fail("audit", "query", "--store", path, ...args);
    expect(error).toBeInstanceOf(CommanderError);
    expect((error as CommanderError).exitCode).not.toBe(0);
    expect((error as Error).message).toMatch(message);
  });

  it.each([
    [["--denied", "--allowed"], /choose one of --denied and --allowed/],
    [["--limit", "0"], /limit/],
    [["--since", "2025-01-16", "--until", "2025-01-15"], /must be before until/],
    [["--capability-hash", "beef"], /capabilityHash/],
  ])("refuses the bad query %j with InvalidInput", async (args, message) => {
    const error = await fail("audit", "query", "--store", path, ...args);
    expect(error).toBeInstanceOf(InvalidInput);
    expect((error as Error).message).toMatch(message);
  });

  it("fails with AuditFailure when there is no log at --store", async () => {
    expect(await fail("audit", "query", "--store", join(dir, "missing.db"))).toBeInstanceOf(AuditFailure);
  });

  it("verifies an intact log and prints the head to anchor the next run with", async () => {
    const { out, exitCode } = await cli("audit", "verify", "--store", path);
    expect(exitCode).toBeUndefined();
    expect(out).toMatch(/^ok: 11 events verified\nhead: seq 11 hash [0-9a-f]{64} \(note it, and pass --anchor 11:[0-9a-f]{64} next time/);
    const head = /--anchor (\S+)/.exec(out)?.[1] ?? "";
    expect((await cli("audit", "verify", "--store", path, "--anchor", head)).exitCode).toBeUndefined();
    const json = JSON.parse((await cli("audit", "verify", "--store", path, "--json")).out) as { ok: boolean; events: number };
    expect(json).toMatchObject({ ok: true, events: 11 });
  });

  it("refuses a malformed --anchor", async () => {
    const error = await fail("audit", "verify", "--store", path, "--anchor", "11");
    expect(error).toBeInstanceOf(CommanderError);
    expect((error as Error).message).toMatch(/must be <seq>:<hash>/);
  });

  it("reports a tampered log, says which event, and exits with 1", async () => {
    const tampered = join(dir, "tampered.db");
    const source = new Database(path);
    await source.backup(tampered);
    source.close();
    const db = new Database(tampered);
    db.exec("DROP TRIGGER audit_events_no_delete");
    db.exec("DELETE FROM audit_events WHERE seq = 4");
    db.close();
    const { out, exitCode } = await cli("audit", "verify", "--store", tampered);
    expect(exitCode).toBe(1);
    expect(out).toMatch(/^TAMPERED: 1 problem\(s\) in 10 events checked\n {2}missing {5}seq {6}4 {2}event seq 4 is missing: deleted from the log\nlast event checked: seq 11\n$/);
  });
});

describePostgres("agentcap audit (Postgres)", () => {
  const url = databaseUrl ?? "";
  const schema = `agentcap_cli_test_${randomBytes(6).toString("hex")}`;

  afterAll(async () => {
    const store = await openAuditStore({ kind: "postgres", url, schema });
    await store.close();
    const { default: pg } = await import("pg");
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it("queries and verifies a log in a Postgres schema", async () => {
    const s = scenario();
    const store = await openAuditStore({ kind: "postgres", url, schema });
    for (const [, event] of s.named) await store.write(event);
    await store.close();
    const { out } = await cli("audit", "query", "--database-url", url, "--schema", schema, "--tenant", "initech", "--format", "jsonl");
    expect(out.trim().split("\n")).toHaveLength(2);
    const verified = await cli("audit", "verify", "--database-url", url, "--schema", schema);
    expect(verified.out).toMatch(/^ok: 11 events verified/);
  });
});

describe("parseTimeArgument", () => {
  const now = T0 + 30 * 60_000;
  const localMidnight = (daysAgo: number) => {
    const d = new Date(now);
    d.setHours(0, 0, 0, 0);
    d.setDate(d.getDate() - daysAgo);
    return d.getTime();
  };
  it.each<[string, number]>([
    ["today", localMidnight(0)],
    ["yesterday", localMidnight(1)],
    ["90m", now - 90 * 60_000],
    ["24h", now - 24 * HOUR],
    ["7d", now - 7 * 24 * HOUR],
    ["30s", now - 30_000],
    [String(T0), T0],
    ["2025-01-15", Date.UTC(2025, 0, 15)],
    ["2025-01-15T09:00Z", T0],
    ["2025-01-15T10:00:00+01:00", T0],
  ])("reads %j", (text, expected) => {
    expect(parseTimeArgument(text, now)).toBe(expected);
  });

  it.each(["", "tomorrow", "last tuesday", "5 hours", "2025-13-45", "Jan 15 2025", "-5"])("refuses %j with InvalidInput", (text) => {
    expect(() => parseTimeArgument(text, now)).toThrow(InvalidInput);
  });
});
