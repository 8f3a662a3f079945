import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Command, CommanderError } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditFailure } from "../../src/kernel/errors.ts";
import { generateCheckpointKey } from "../../src/audit/checkpoint.ts";
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
  const checkpoints = `${path}.checkpoints`;
  const key = generateCheckpointKey("audit.test/cli");
  const nameOf = new Map<string, string>();
  let s: ReturnType<typeof scenario>;

  beforeAll(async () => {
    s = scenario();
    // A checkpoint every 4 entries (at 4 and 8), and one more when the store closes (at 11), in the default file beside the log.
    const store = await openAuditStore({ kind: "sqlite", path, checkpoints: { key: key.signerKey, everyEntries: 4 } });
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
    expect(lines[0]).toMatch(/^seq\s+time \(UTC\)\s+principal\s+tool\s+action\s+target\s+decision\s+outcome\s+capability$/);
    expect(lines).toHaveLength(2 + 3);
    expect(lines[2]).toMatch(/^3\s+2025-01-15 11:00:00\s+alice\s+search\s+http\.request\s+GET https:\/\/api\.example\.com\/v2\/admin\s+DENIED ERR_CAPABILITY_DENIED at link 3/);
    expect(lines[4]).toMatch(/DENIED ERR_REVOKED at link 2\s+ERR_REVOKED\s+\w{8} \(depth 3\)$/);
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

  it("verifies an intact log against its signed checkpoints", async () => {
    const { out, exitCode } = await cli("audit", "verify", "--store", path, "--checkpoints", checkpoints, "--public-key", key.verifierKey);
    expect(exitCode).toBeUndefined();
    expect(out).toMatch(/^ok: 11 entries verified\ntree: 11 entries, root \S+\ncheckpoints: 3 signed checkpoint\(s\) checked, the latest covering 11 entries\n$/);
    const json = JSON.parse((await cli("audit", "verify", "--store", path, "--json")).out) as { ok: boolean; events: number };
    expect(json).toMatchObject({ ok: true, events: 11 });
    // Without checkpoints it says what it cannot see.
    expect((await cli("audit", "verify", "--store", path)).out).toMatch(/checkpoints: none given, so a rewrite with recomputed hashes, a truncated end or a replaced database would go unseen/);
  });

  it("takes the public key from a file, and refuses --checkpoints without it", async () => {
    const keyFile = join(dir, "audit.pub");
    writeFileSync(keyFile, `${key.verifierKey}\n`);
    expect((await cli("audit", "verify", "--store", path, "--checkpoints", checkpoints, "--public-key", keyFile)).exitCode).toBeUndefined();
    expect(await fail("audit", "verify", "--store", path, "--checkpoints", checkpoints)).toBeInstanceOf(InvalidInput);
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
    expect(out).toMatch(/^TAMPERED: 1 problem\(s\) in 10 entries checked\n {2}missing {5}seq {6}4 {2}event seq 4 is missing: deleted from the log\n/);
  });

  it("catches a truncated end only with the checkpoints", async () => {
    const truncated = join(dir, "truncated.db");
    const source = new Database(path);
    await source.backup(truncated);
    source.close();
    const db = new Database(truncated);
    db.exec("DROP TRIGGER audit_events_no_delete; DROP TRIGGER audit_event_links_no_delete");
    db.exec("DELETE FROM audit_events WHERE seq > 9; DELETE FROM audit_event_links WHERE event_seq > 9");
    db.close();
    expect((await cli("audit", "verify", "--store", truncated)).exitCode).toBeUndefined();
    const { out, exitCode } = await cli("audit", "verify", "--store", truncated, "--checkpoints", checkpoints, "--public-key", key.verifierKey);
    expect(exitCode).toBe(1);
    expect(out).toMatch(/truncated .* the log ends at seq 9, but a signed checkpoint covers 11 entries/);
  });

  it("proves an event, and the proof verifies with the public key alone", async () => {
    const [a3] = [...nameOf.entries()].filter(([, n]) => n === "a3").map(([id]) => id);
    const proofFile = join(dir, "a3.proof.json");
    await cli("audit", "prove", a3 ?? "", "--store", path, "--checkpoints", checkpoints, "--public-key", key.verifierKey, "--out", proofFile);
    const { out, exitCode } = await cli("audit", "verify-proof", proofFile, "--public-key", key.verifierKey);
    expect(exitCode).toBeUndefined();
    expect(out).toMatch(/^ok: 1 entry proved in the tree of 11 signed by audit\.test\/cli\n/);
    expect(out).toContain(a3);
    // Another key, or an edited proof, proves nothing.
    const other = generateCheckpointKey("audit.test/cli");
    expect((await cli("audit", "verify-proof", proofFile, "--public-key", other.verifierKey)).out).toMatch(/^NOT PROVED: the checkpoint carries no signature by audit\.test\/cli/);
    writeFileSync(proofFile, readFileSync(proofFile, "utf8").replace("v2/admin", "v1/admin"));
    const edited = await cli("audit", "verify-proof", proofFile, "--public-key", key.verifierKey);
    expect(edited.exitCode).toBe(1);
    expect(edited.out).toMatch(/^NOT PROVED: entries\.0 \(index 2\) is not in the tree of 11 entries the checkpoint signed/);
  });

  it("makes a checkpoint key, never overwriting one", async () => {
    const keyFile = join(dir, "signing.key");
    const { out } = await cli("audit", "keygen", "--name", "example.com/audit", "--out", keyFile);
    expect(out).toMatch(/^example\.com\/audit\+[0-9a-f]{8}\+\S+\n$/);
    expect(readFileSync(keyFile, "utf8")).toMatch(/^PRIVATE\+KEY\+example\.com\/audit\+[0-9a-f]{8}\+/);
    expect(await fail("audit", "keygen", "--name", "example.com/audit", "--out", keyFile)).toBeInstanceOf(InvalidInput);
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
    expect(verified.out).toMatch(/^ok: 11 entries verified/);
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
