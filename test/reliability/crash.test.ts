import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { parseSignerKey, splitNotes } from "../../src/audit/checkpoint.ts";
import { openAuditStore } from "../../src/audit/open.ts";
import type { AuditStore } from "../../src/audit/store.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "../mcp/support.ts";
import { databaseUrl, describePostgres } from "../support/postgres.ts";
import { killHard, startGateway, stopGently, until, type GatewayProcess } from "./processes.ts";

/*
 * kill -9 of a gateway in the middle of a burst of tool calls, with one call
 * still acting (a program running) when it dies. After a restart on the
 * same configuration, with nothing repaired by hand: the stores open and the
 * gateway serves again; every call the client saw succeed, and every denial
 * it saw, has its record; the call that was acting is reported as an intent
 * without an outcome; and the log verifies against its signed checkpoints.
 * Once with SQLite, once with every store in Postgres.
 */

const FILES = 150;
const SLEEP = "/usr/bin/sleep";

type Engine = { readonly kind: "sqlite" } | { readonly kind: "postgres"; readonly url: string; readonly schema: string };

const fixtures: Fixture[] = [];
const schemas: string[] = [];

afterAll(async () => {
  fixtures.forEach((f) => { f.cleanup(); });
  if (databaseUrl === undefined || schemas.length === 0) return;
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await client.end();
});

function setup(engine: Engine): Fixture {
  const stores =
    engine.kind === "sqlite"
      ? {
          tokenStore: { kind: "sqlite", path: "state/tokens.db" },
          audit: { kind: "sqlite", path: "state/audit.db", checkpoints: { keyFile: "secrets/audit.key", createKeyIfMissing: true, everyEntries: 25 } },
        }
      : {
          tokenStore: { kind: "postgres", url: engine.url, schema: `${engine.schema}_tokens` },
          audit: { kind: "postgres", url: engine.url, schema: engine.schema, checkpoints: { keyFile: "secrets/audit.key", createKeyIfMissing: true, file: "state/audit.checkpoints", everyEntries: 25 } },
        };
  const fixture = makeFixture({
    ...stores,
    policy: {
      roles: {
        worker: {
          tools: ["read_file", "run_command"],
          fs: [{ path: "workspace/public", ops: ["read"] }, { path: "workspace", ops: ["list"] }],
          exec: [{ program: SLEEP, args: [{ any: true }] }],
        },
      },
      principals: { alice: { roles: ["worker"] } },
    },
    tools: { files: { root: "workspace" }, commands: {} },
  });
  fixtures.push(fixture);
  for (let i = 0; i < FILES; i++) writeFileSync(path.join(fixture.workspace, "public", `f${i}.txt`), `file ${i}\n`);
  return fixture;
}

/** The audit store the gateway of `fixture` writes to, opened by this process to read it. */
function readLog(fixture: Fixture, engine: Engine): Promise<AuditStore> {
  return engine.kind === "sqlite"
    ? openAuditStore({ kind: "sqlite", path: path.join(fixture.dir, "state", "audit.db"), readOnly: true })
    : openAuditStore({ kind: "postgres", url: engine.url, schema: engine.schema, readOnly: true, poolSize: 1 });
}

interface Burst {
  /** Public files whose content the client received. */
  readonly read: string[];
  /** Private files whose denial the client received. */
  readonly denied: string[];
  /** Calls that got no answer (the gateway died under them). */
  failed: number;
}

/**
 * Runs the burst against `gateway` from four sessions, eight calls at a
 * time, and kills the gateway with SIGKILL once a third of it has been
 * answered and a program is running under a tool call.
 */
async function burstThenKill(fixture: Fixture, engine: Engine, gateway: GatewayProcess): Promise<Burst> {
  const log = await readLog(fixture, engine);
  const sessions = await Promise.all([0, 1, 2, 3].map(() => httpClient(gateway.url, gateway.token)));
  const burst: Burst = { read: [], denied: [], failed: 0 };
  const stop = new AbortController();
  // Acting when the gateway dies: its intent is recorded, its outcome never will be.
  const sleeping = sessions[0]?.client
    .callTool({ name: "run_command", arguments: { argv: [SLEEP, "8"], cwd: fixture.workspace } }, undefined, { signal: stop.signal })
    .catch(() => undefined);
  let next = 0;
  const worker = async (i: number) => {
    const { client } = sessions[i % sessions.length] as (typeof sessions)[number];
    while (next < FILES) {
      const n = next++;
      // One call in five asks for a file the capability does not reach.
      const file = n % 5 === 4 ? `private/p${n}.txt` : `public/f${n}.txt`;
      let result: CallToolResult;
      try {
        result = (await client.callTool({ name: "read_file", arguments: { path: file } }, undefined, { signal: stop.signal })) as CallToolResult;
      } catch {
        burst.failed++;
        continue;
      }
      if (result.isError === true) burst.denied.push(file);
      else {
        expect(JSON.parse(textOf(result))).toEqual({ path: file, text: `file ${n}\n` });
        burst.read.push(file);
      }
    }
  };
  const killer = (async () => {
    await until("a program running under a tool call", async () => (await log.query({ action: "exec" })).length > 0, 15_000, 25);
    await until("a third of the burst answered", () => Promise.resolve(burst.read.length + burst.denied.length >= FILES / 3), 15_000, 25);
    await killHard(gateway);
    // What was on the wire has arrived by now; a call whose stream died with the gateway would wait for its answer until the client's own timeout.
    await new Promise((resolve) => setTimeout(resolve, 500));
    stop.abort();
  })();
  await Promise.all([killer, ...Array.from({ length: 8 }, (_, i) => worker(i))]);
  await sleeping;
  await log.close();
  await Promise.all(sessions.map((s) => s.transport.close().catch(() => undefined)));
  return burst;
}

async function crashAndRestart(engine: Engine): Promise<void> {
  const fixture = setup(engine);
  const first = await startGateway(fixture.configFile, "alice");
  const burst = await burstThenKill(fixture, engine, first);
  expect(burst.read.length).toBeGreaterThan(0);
  expect(burst.denied.length).toBeGreaterThan(0);
  // Cut off mid-burst: some calls never got an answer.
  expect(burst.failed).toBeGreaterThan(0);

  // Restarted on the same configuration, nothing repaired: it serves the same token again.
  const second = await startGateway(fixture.configFile, "alice");
  const { client } = await httpClient(second.url, first.token);
  expect(JSON.parse(textOf(await client.callTool({ name: "read_file", arguments: { path: "public/f0.txt" } })))).toEqual({ path: "public/f0.txt", text: "file 0\n" });
  await client.close();
  await stopGently(second);

  const log = await readLog(fixture, engine);
  try {
    const records = await log.query({ limit: 10_000 });
    const reads = records.filter((r) => r.event.request.action === "fs.read");
    const readPaths = new Set(reads.filter((r) => r.event.decision.allowed).map((r) => (r.event.request as { path: string }).path));
    for (const file of burst.read) expect(readPaths, file).toContain(path.join(fixture.workspace, file));
    // A denied call is one event of the tool, naming what it asked for.
    const deniedCalls = records.filter((r) => r.event.tool === "read_file" && !r.event.decision.allowed);
    expect(deniedCalls.length).toBeGreaterThanOrEqual(burst.denied.length);
    // The program was acting when the process died: its intent is there, without an outcome.
    const exec = records.filter((r) => r.event.request.action === "exec");
    expect(exec).toHaveLength(1);
    expect(exec[0]?.event.outcome).toBeNull();

    const keyFile = readFileSync(path.join(fixture.dir, "secrets", "audit.key"), "utf8");
    const checkpointFile = path.join(fixture.dir, "state", engine.kind === "sqlite" ? "audit.db.checkpoints" : "audit.checkpoints");
    const report = await log.verify({ checkpoints: splitNotes(readFileSync(checkpointFile, "utf8")), verifierKey: parseSignerKey(keyFile).verifierKey });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.checkpoints.checked).toBeGreaterThan(1);
    expect(report.openIntents.map((o) => o.id)).toContain(exec[0]?.event.id);
    expect(report.openIntentCount).toBe(records.filter((r) => r.outcomeSeq === null).length);
  } finally {
    await log.close();
  }
}

describe("kill -9 of the gateway mid-burst", () => {
  it("SQLite: after a restart every answered call has its record, the acting one is an open intent, and the log verifies", async () => {
    await crashAndRestart({ kind: "sqlite" });
  }, 120_000);
});

describePostgres("kill -9 of the gateway mid-burst, stores in Postgres", () => {
  it("after a restart every answered call has its record, the acting one is an open intent, and the log verifies", async () => {
    const schema = `agentcap_test_${randomBytes(6).toString("hex")}`;
    schemas.push(schema, `${schema}_tokens`);
    await crashAndRestart({ kind: "postgres", url: databaseUrl as string, schema });
  }, 120_000);
});
