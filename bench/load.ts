/**
 * `npm run load`: many MCP sessions at once against real gateway processes
 * (the built `agentcap serve`), loopback only, bounded in count and time.
 * Each session has its own token (its own principal) and makes its calls
 * one after another, a quarter of them asking for a file its capability
 * does not reach. Prints throughput, latency, errors and the gateways'
 * memory, then checks what the audit log holds against the driver's own
 * log: per session, exactly one tool event per call with the decision the
 * driver expected, one file read per allowed call, no intent left without
 * an outcome, and the whole log verifying against its signed checkpoints.
 *
 *   npm run load                                # 200 sessions × 20 calls: SQLite, then Postgres (DATABASE_URL) with two gateways
 *   npm run load -- --full                      # 1,000 sessions × 100 calls (the figure a security team asks for; long on 2 cores)
 *   npm run load -- --sessions 50 --calls 20 --engine sqlite --max-seconds 120
 *   npm run load -- --rounds 3 --heap-snapshots /tmp/snaps   # the same sessions three times over, a heap snapshot after each
 *
 * Past --max-seconds the sessions stop calling and the run is reported as
 * far as it got (then checked like any other). Exits 1 when a check fails
 * or the bound was reached.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { subscribe } from "node:diagnostics_channel";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import pg from "pg";
import { Agent, setGlobalDispatcher } from "undici";
import { parseSignerKey, splitNotes } from "../src/audit/checkpoint.ts";
import { openAuditStore } from "../src/audit/open.ts";
import type { Grant } from "../src/kernel/index.ts";
import { generateKeyPair } from "../src/token/biscuit.ts";
import { openPostgresTokenStore } from "../src/token/postgres-store.ts";
import { openSqliteTokenStore } from "../src/token/sqlite-store.ts";
import { createTokenMint, toToken } from "../src/token/token.ts";

const { values: args } = parseArgs({
  options: {
    sessions: { type: "string" },
    calls: { type: "string" },
    full: { type: "boolean", default: false },
    engine: { type: "string" },
    "max-seconds": { type: "string", default: "3600" },
    rounds: { type: "string", default: "1" },
    "heap-snapshots": { type: "string" },
  },
});

const SESSIONS = Number(args.sessions ?? (args.full ? 1000 : 200));
const CALLS = Number(args.calls ?? (args.full ? 100 : 20));
const MAX_SECONDS = Number(args["max-seconds"]);
const ROUNDS = Number(args.rounds);
const MAX_MS = MAX_SECONDS * 1000;
const databaseUrl = process.env.DATABASE_URL === "" ? undefined : process.env.DATABASE_URL;
const engines = args.engine === undefined ? (databaseUrl === undefined ? ["sqlite"] : ["sqlite", "postgres"]) : [args.engine];
for (const [name, n] of [["--sessions", SESSIONS], ["--calls", CALLS], ["--max-seconds", MAX_SECONDS], ["--rounds", ROUNDS]] as const) {
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new Error(`${name} must be a whole number from 1 to 1,000,000`);
}
if (engines.some((e) => e !== "sqlite" && e !== "postgres")) throw new Error("--engine is sqlite or postgres");
if (engines.includes("postgres") && databaseUrl === undefined) throw new Error("--engine postgres needs DATABASE_URL");

const FILES = 64;
// How late this process's own event loop runs: its clients' latencies include it.
const driverLoop = monitorEventLoopDelay({ resolution: 10 });
driverLoop.enable();

/*
 * The phases of every POST the clients send, from fetch's own diagnostics
 * (undici): waiting for a connection (created → headers sent), waiting for
 * the answer to begin (→ response headers), and reading it (→ its end). A
 * slow call is then placed in the client, the network or the gateway.
 */
interface Phases {
  created: number;
  sent?: number;
  headers?: number;
}
const phases = new WeakMap<object, Phases>();
let posts: { wait: number; first: number; body: number }[] = [];
let connects = 0;
let connectFailures = 0;
subscribe("undici:request:create", (m) => {
  const { request } = m as { request: { method?: string } };
  if (request.method === "POST") phases.set(request, { created: performance.now() });
});
subscribe("undici:client:sendHeaders", (m) => {
  const p = phases.get((m as { request: object }).request);
  if (p !== undefined) p.sent = performance.now();
});
subscribe("undici:request:headers", (m) => {
  const p = phases.get((m as { request: object }).request);
  if (p !== undefined) p.headers = performance.now();
});
subscribe("undici:request:trailers", (m) => {
  const p = phases.get((m as { request: object }).request);
  if (p?.sent === undefined || p.headers === undefined) return;
  posts.push({ wait: p.sent - p.created, first: p.headers - p.sent, body: performance.now() - p.headers });
});
subscribe("undici:client:connected", () => {
  connects++;
});
subscribe("undici:client:connectError", () => {
  connectFailures++;
});

/** Where the POSTs of a round spent their time, overall and for those that took over two seconds. */
function postPhases(): string {
  const total = (x: { wait: number; first: number; body: number }) => x.wait + x.first + x.body;
  const slow = posts.filter((x) => total(x) > 2000);
  const sum = (k: "wait" | "first" | "body") => slow.reduce((n, x) => n + x[k], 0);
  const all = sum("wait") + sum("first") + sum("body");
  const share = (k: "wait" | "first" | "body") => `${all === 0 ? 0 : Math.round((100 * sum(k)) / all)}%`;
  const line = `${posts.length} POSTs, ${slow.length} over 2 s, whose time went to waiting for a connection ${share("wait")}, for the answer to begin ${share("first")}, reading the answer ${share("body")}; ${connects} connections opened, ${connectFailures} failed to open`;
  posts = [];
  connects = 0;
  connectFailures = 0;
  return line;
}
const started = Date.now();
/** Whether the run has reached --max-seconds: sessions then stop calling, and what was done is reported and checked. */
const late = () => Date.now() - started > MAX_MS;

interface Gateway {
  readonly process: ChildProcess;
  readonly url: string;
  /** Resident memory now, and its peak over the process's life, in bytes (from /proc). */
  memory(): { readonly rss: number; readonly peak: number };
  /** Its heap right after a full garbage collection, and its event loop and request times since the last report. */
  report(): Promise<GatewayReport>;
  stop(): Promise<void>;
}

/** What bench/load-gateway.ts prints on SIGUSR2: bytes, and ms since its previous report. */
interface GatewayReport {
  readonly heap: number;
  readonly loop_p50: number;
  readonly loop_p99: number;
  readonly loop_max: number;
  readonly posts: number;
  readonly post_p50: number;
  readonly post_p99: number;
  readonly post_max: number;
}

function procMemory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? "0") * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/**
 * The gateway's sockets as the kernel holds them (/proc/net/tcp): how many
 * connections wait in its listen queue to be accepted, and how many
 * accepted connections hold request bytes it has not read yet. Either is
 * time a request spends at the gateway before its HTTP parser sees it,
 * which the gateway's own per-POST timing cannot include.
 */
function socketQueues(port: number): { readonly accept: number; readonly unread: number } {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let accept = 0;
  let unread = 0;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hex}`) !== true) continue;
    const queued = Number.parseInt(f[4]?.split(":")[1] ?? "0", 16);
    // State 0A is listening (its receive queue is the accept queue), 01 established.
    if (f[3] === "0A") accept = queued;
    else if (f[3] === "01" && queued > 0) unread++;
  }
  return { accept, unread };
}

/** Starts the built `agentcap serve` on a free loopback port. */
function startGateway(configFile: string): Promise<Gateway> {
  const env = { ...process.env, AGENTCAP_LOAD_SNAPSHOTS: args["heap-snapshots"] ?? "" };
  const proc = spawn(process.execPath, ["--expose-gc", "--import", "tsx", path.resolve("bench/load-gateway.ts"), "serve", "--config", configFile, "--host", "127.0.0.1", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"], env });
  let errors = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (chunk: string) => {
    errors = (errors + chunk).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => { resolve(); }));
  const reports: ((r: GatewayReport) => void)[] = [];
  return new Promise((resolve, reject) => {
    void exited.then(() => { reject(new Error(`agentcap serve exited before listening:\n${errors}`)); });
    createInterface({ input: proc.stdout }).on("line", (line) => {
      if (line.startsWith("memory ")) {
        const fields = Object.fromEntries(line.slice(7).split(" ").map((kv): [string, number] => { const [k = "", v] = kv.split("="); return [k, Number(v)]; }));
        reports.shift()?.(fields as unknown as GatewayReport);
      }
      const m = /^agentcap gateway listening on (\S+)$/.exec(line);
      if (m === null) return;
      resolve({
        process: proc,
        url: m[1] as string,
        memory: () => procMemory(proc.pid as number),
        report: () =>
          new Promise((answer) => {
            reports.push(answer);
            proc.kill("SIGUSR2");
          }),
        stop: async () => {
          proc.kill("SIGTERM");
          await exited;
        },
      });
    });
  });
}

interface Setup {
  readonly dir: string;
  readonly configFile: string;
  readonly tokens: readonly string[];
  readonly audit: () => ReturnType<typeof openAuditStore>;
  readonly checkpointFile: string;
  cleanup(): Promise<void>;
}

async function setup(engine: "sqlite" | "postgres"): Promise<Setup> {
  const dir = mkdtempSync(path.join(tmpdir(), "agentcap-load-"));
  const workspace = path.join(dir, "workspace");
  mkdirSync(path.join(workspace, "public"), { recursive: true });
  mkdirSync(path.join(workspace, "private"), { recursive: true });
  for (let i = 0; i < FILES; i++) writeFileSync(path.join(workspace, "public", `f${i}.txt`), `file ${i}\n`);
  writeFileSync(path.join(workspace, "private", "secret.txt"), "secret\n");
  const keys = { keyId: 1, ...generateKeyPair() };
  writeFileSync(path.join(dir, "keys.json"), JSON.stringify(keys));
  const schema = `agentcap_load_${randomBytes(5).toString("hex")}`;
  const checkpointFile = path.join(dir, "state", "audit.checkpoints");
  const checkpoints = { keyFile: "secrets/audit.key", createKeyIfMissing: true, file: checkpointFile, everyEntries: 1000 };
  const stores =
    engine === "sqlite"
      ? { tokenStore: { kind: "sqlite", path: "state/tokens.db" }, audit: { kind: "sqlite", path: "state/audit.db", checkpoints } }
      : { tokenStore: { kind: "postgres", url: databaseUrl, schema: `${schema}_tokens` }, audit: { kind: "postgres", url: databaseUrl, schema, checkpoints } };
  const reader: Grant = { tools: ["read_file", "list_files"], fs: [{ path: path.join(workspace, "public"), ops: ["read", "list"] }] };
  const config = {
    issuer: "load",
    keys: { file: "keys.json" },
    ...stores,
    policy: { roles: { reader }, principals: {} },
    tools: { files: { root: "workspace" } },
    // Room for every session of the run in one gateway, and a call of each in flight at once.
    sessions: { max: SESSIONS + 10, maxConcurrentCalls: 64, maxQueuedCalls: SESSIONS + 10 },
  };
  const configFile = path.join(dir, "agentcap.json");
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  // The driver mints each session's token itself, under the gateway's key and token store.
  const store = engine === "sqlite" ? (mkdirSync(path.join(dir, "state"), { recursive: true }), openSqliteTokenStore(path.join(dir, "state", "tokens.db"))) : await openPostgresTokenStore({ connectionString: databaseUrl as string, schema: `${schema}_tokens` });
  const mint = createTokenMint({ issuer: "load", signingKey: keys.privateKey, keyId: keys.keyId, policy: () => reader, store });
  const tokens = Array.from({ length: SESSIONS }, (_, i) => toToken(mint.issue({ id: `user-${i}` })));
  await store.close();
  return {
    dir,
    configFile,
    tokens,
    checkpointFile,
    audit: () =>
      engine === "sqlite"
        ? openAuditStore({ kind: "sqlite", path: path.join(dir, "state", "audit.db"), readOnly: true })
        : openAuditStore({ kind: "postgres", url: databaseUrl as string, schema, readOnly: true }),
    cleanup: async () => {
      rmSync(dir, { recursive: true, force: true });
      if (engine !== "postgres") return;
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.query(`DROP SCHEMA IF EXISTS ${schema}_tokens CASCADE`);
      await admin.end();
    },
  };
}

/*
 * The clients' connections: kept at most 30 s when idle, well under the
 * gateway's keep-alive (65 s), so a client never sends a request on a
 * connection the gateway is closing. (undici's global dispatcher is the one
 * Node's fetch uses.)
 */
setGlobalDispatcher(new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 30_000 }));

/** Requests sent again, by why; printed with the errors, so a retry never hides what happened. */
const retries = new Map<string, number>();

/** Connection failures after which the request never left the client: sending it again cannot run anything twice. */
const NEVER_SENT = new Set(["UND_ERR_CONNECT_TIMEOUT", "ECONNREFUSED"]);
/** Connection failures after which the request may have reached the gateway. */
const MAYBE_SENT = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);

/**
 * Whether a request that failed with `code` may be sent again. A tool call
 * only when it never left: once it may have reached the gateway it may have
 * run, so it is counted as an error instead. Anything else the MCP client
 * sends also when its connection broke: opening the event stream (GET),
 * ending the session (DELETE), notifications, and initialize, whose only
 * effect, a session the client never learns of, the gateway ends when idle.
 */
function mayRetry(init: RequestInit | undefined, code: string): boolean {
  if (NEVER_SENT.has(code)) return true;
  if (!MAYBE_SENT.has(code)) return false;
  const body = typeof init?.body === "string" ? init.body : "";
  return !body.includes('"method":"tools/call"');
}

/** fetch, sending a request again (at most 3 times) only when mayRetry says so. */
const loadFetch = async (url: string | URL, init?: RequestInit): Promise<Response> => {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (e) {
      const code = (e instanceof Error && e.cause instanceof Error ? (e.cause as NodeJS.ErrnoException).code : undefined) ?? "";
      if (attempt === 3 || !mayRetry(init, code)) throw e;
      const why = `${init?.method ?? "GET"} after ${code}`;
      retries.set(why, (retries.get(why) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
    }
  }
};

/** What the driver saw of one session: its id, and per call whether the gateway allowed it. */
interface SessionLog {
  id: string;
  allowed: number;
  denied: number;
  /** Calls answered with a decision other than the one expected. */
  wrong: number;
  /** Calls that failed outright (no answer, or not an MCP result). */
  errors: number;
  /** Calls not made because the run reached --max-seconds. */
  unmade: number;
  readonly latencies: number[];
  /** When each answered call started (ms since the round began), and its index in the session (0: the session's first). */
  readonly starts: number[];
  readonly indexes: number[];
}

/** What the answers with an unexpected decision said, by text. */
const wrongAnswers = new Map<string, number>();

/** Why calls failed, by message, to say what the errors were. */
const failures = new Map<string, number>();
const failed = (e: unknown) => {
  const cause = e instanceof Error && e.cause instanceof Error ? ` (${e.cause.message})` : "";
  const why = `${e instanceof Error ? e.message : String(e)}${cause}`.slice(0, 200);
  failures.set(why, (failures.get(why) ?? 0) + 1);
};

/*
 * Sessions open at most this many at a time (then all stay open and call at
 * once): a thousand TCP handshakes and token verifications in the same
 * millisecond overflow the listen backlog of a gateway busy verifying, which
 * measures the kernel's SYN retries rather than the gateway.
 */
const OPENING = 32;
let opening = 0;
const openers: (() => void)[] = [];
async function openSlot(): Promise<() => void> {
  if (opening >= OPENING) await new Promise<void>((resolve) => openers.push(resolve));
  opening++;
  return () => {
    opening--;
    openers.shift()?.();
  };
}

async function runSession(url: string, token: string, index: number, roundStart = performance.now()): Promise<SessionLog> {
  const log: SessionLog = { id: "", allowed: 0, denied: 0, wrong: 0, errors: 0, unmade: 0, latencies: [], starts: [], indexes: [] };
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: loadFetch, requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new Client({ name: "load", version: "0" });
  const opened = await openSlot();
  try {
    await client.connect(transport);
  } catch (e) {
    failed(e);
    log.errors += CALLS;
    return log;
  } finally {
    opened();
  }
  log.id = transport.sessionId ?? "";
  for (let k = 0; k < CALLS; k++) {
    if (late()) {
      log.unmade = CALLS - k;
      break;
    }
    // A quarter of the calls ask for what the capability does not reach.
    const deny = k % 4 === 3;
    const file = deny ? "private/secret.txt" : `public/f${(index + k) % FILES}.txt`;
    const t0 = performance.now();
    try {
      const result = (await client.callTool({ name: "read_file", arguments: { path: file } }, undefined, { timeout: 60_000 })) as CallToolResult;
      log.latencies.push(performance.now() - t0);
      log.starts.push(t0 - roundStart);
      log.indexes.push(k);
      const refused = result.isError === true;
      if (refused) log.denied++;
      else log.allowed++;
      const content = result.content[0];
      const text = content?.type === "text" ? content.text : "";
      if (refused !== deny || (deny ? !text.startsWith("ERR_CAPABILITY_DENIED") : !text.includes(`file ${(index + k) % FILES}`))) {
        log.wrong++;
        const why = `${deny ? "denial expected" : "allowed expected"}, answered: ${text}`.slice(0, 200);
        wrongAnswers.set(why, (wrongAnswers.get(why) ?? 0) + 1);
      }
    } catch (e) {
      failed(e);
      log.errors++;
    }
  }
  // Ends the session on the gateway (DELETE), as a well-behaved client does.
  await transport.terminateSession().catch(() => undefined);
  await client.close();
  return log;
}

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Where the slowest calls were: how many took longer than `p99`, how many
 * of those were their session's first call, and when in the round they
 * started (in tenths of the round), to tell a backlog at the start (every
 * session's first call at once) from stalls spread over the run.
 */
function tail(logs: readonly SessionLog[], p99: number, roundMs: number): string {
  let slow = 0;
  let first = 0;
  const tenths = Array.from({ length: 10 }, () => 0);
  for (const l of logs) {
    l.latencies.forEach((ms, j) => {
      if (ms <= p99) return;
      slow++;
      if (l.indexes[j] === 0) first++;
      const t = Math.min(9, Math.floor(((l.starts[j] ?? 0) / roundMs) * 10));
      tenths[t] = (tenths[t] ?? 0) + 1;
    });
  }
  return `${slow} calls over the p99, ${first} of them their session's first; started in each tenth of the round: ${tenths.join(" ")}`;
}

async function run(engine: "sqlite" | "postgres"): Promise<boolean> {
  const gateways = engine === "sqlite" ? 1 : 2;
  console.log(`\n== ${engine}: ${gateways} gateway${gateways === 1 ? "" : "s"}, ${SESSIONS} concurrent sessions × ${CALLS} calls (a quarter denied), loopback ==`);
  const s = await setup(engine);
  const running: Gateway[] = [];
  try {
    for (let g = 0; g < gateways; g++) running.push(await startGateway(s.configFile));
    // Warm up: one session per gateway, so the baseline has every module loaded.
    for (const [g, gw] of running.entries()) {
      if ((await runSession(gw.url, s.tokens[g] as string, g)).errors > 0) throw new Error("the warm-up session failed");
    }
    await settle(1000);
    const baseline = running.map((g) => g.memory().rss);
    const heapBefore = (await Promise.all(running.map((g) => g.report()))).map((r) => r.heap);
    const logs: SessionLog[] = [];
    let errors = 0;
    let wrong = 0;
    let unmade = 0;
    for (let round = 1; round <= ROUNDS && !late(); round++) {
      let peak = baseline.slice();
      const sampler = setInterval(() => {
        peak = running.map((g, i) => Math.max(peak[i] as number, g.memory().rss));
      }, 100);
      const queues = running.map(() => ({ samples: 0, acceptMax: 0, unreadMax: 0, unreadSum: 0 }));
      const queueSampler = setInterval(() => {
        for (const [i, g] of running.entries()) {
          const q = socketQueues(Number(new URL(g.url).port));
          const seen = queues[i] as { samples: number; acceptMax: number; unreadMax: number; unreadSum: number };
          seen.samples++;
          seen.acceptMax = Math.max(seen.acceptMax, q.accept);
          seen.unreadMax = Math.max(seen.unreadMax, q.unread);
          seen.unreadSum += q.unread;
        }
      }, 500);
      driverLoop.reset();
      postPhases();
      const t0 = performance.now();
      const roundLogs = await Promise.all(s.tokens.map((token, i) => runSession((running[i % gateways] as Gateway).url, token, i, t0)));
      const seconds = (performance.now() - t0) / 1000;
      clearInterval(sampler);
      clearInterval(queueSampler);
      logs.push(...roundLogs);
      // What the gateways saw of this round (their event loop, their requests), before the 3 s of quiet.
      const inside = await Promise.all(running.map((g) => g.report()));
      await settle(3000);
      const after = running.map((g) => g.memory().rss);
      const heapAfter = (await Promise.all(running.map((g) => g.report()))).map((r) => r.heap);

      const latencies = roundLogs.flatMap((l) => l.latencies).sort((a, b) => a - b);
      const made = roundLogs.reduce((n, l) => n + CALLS - l.unmade, 0);
      const roundErrors = roundLogs.reduce((n, l) => n + l.errors, 0);
      const roundWrong = roundLogs.reduce((n, l) => n + l.wrong, 0);
      const roundUnmade = roundLogs.reduce((n, l) => n + l.unmade, 0);
      errors += roundErrors;
      wrong += roundWrong;
      unmade += roundUnmade;
      if (ROUNDS > 1) console.log(`-- round ${round} of ${ROUNDS}`);
      console.log(`calls:        ${made} of ${SESSIONS * CALLS} made in ${seconds.toFixed(1)} s = ${(latencies.length / seconds).toFixed(0)} calls/s answered${roundUnmade > 0 ? `; stopped by --max-seconds ${MAX_SECONDS} with ${roundUnmade} calls not made` : ""}`);
      console.log(`latency:      p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${(latencies.at(-1) ?? NaN).toFixed(1)} ms`);
      console.log(`tail:         ${tail(roundLogs, percentile(latencies, 99), seconds * 1000)}`);
      console.log(`requests:     ${postPhases()}`);
      console.log(`driver:       event loop late p50 ${(driverLoop.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(driverLoop.percentile(99) / 1e6).toFixed(1)} ms, max ${(driverLoop.max / 1e6).toFixed(1)} ms (this process, running every session's client)`);
      console.log(`errors:       ${roundErrors} calls without an answer, ${roundWrong} answers with a decision other than expected`);
      for (const [why, n] of [...failures].sort((a, b) => b[1] - a[1]).slice(0, 3)) console.log(`              ${n} × ${why}`);
      failures.clear();
      for (const [why, n] of [...wrongAnswers].sort((a, b) => b[1] - a[1]).slice(0, 3)) console.log(`              ${n} × ${why}`);
      wrongAnswers.clear();
      console.log(`retried:      ${retries.size === 0 ? "no request" : [...retries].map(([why, n]) => `${n} × ${why}`).join(", ")} (never a tool call that may have reached the gateway)`);
      retries.clear();
      for (const [i, g] of running.entries()) {
        const r = inside[i] as GatewayReport;
        console.log(`inside gw ${i}:  event loop late p50 ${r.loop_p50} ms, p99 ${r.loop_p99} ms, max ${r.loop_max} ms; ${r.posts} POSTs took p50 ${r.post_p50} ms, p99 ${r.post_p99} ms, max ${r.post_max} ms from arrival to the end of the answer`);
        const q = queues[i] as { samples: number; acceptMax: number; unreadMax: number; unreadSum: number };
        console.log(`kernel (gw ${i}): up to ${q.acceptMax} connections waiting to be accepted; connections holding request bytes the gateway had not read: ${(q.unreadSum / Math.max(1, q.samples)).toFixed(1)} on average, up to ${q.unreadMax} (${q.samples} samples, every 0.5 s)`);
        console.log(`memory (gw ${i}): RSS ${mb(baseline[i] as number)} before, peak ${mb(peak[i] as number)} (VmHWM ${mb(g.memory().peak)}), ${mb(after[i] as number)} 3 s after the sessions ended; heap after a full GC ${mb(heapBefore[i] as number)} before the first round, ${mb(heapAfter[i] as number)} after this one`);
      }
    }

    for (const g of running) await g.stop();
    running.length = 0;
    // The audit log against the driver's own log.
    const audit = await s.audit();
    let missing = 0;
    let extra = 0;
    let misdecided = 0;
    try {
      for (const l of logs) {
        if (l.id === "") continue;
        // An allowed call is a tool event and the file read under it; a denied one is a single event naming what it asked for.
        const events = (await audit.query({ sessionId: l.id, limit: 10_000 })).map((r) => r.event);
        const allowedEvents = events.filter((e) => e.request.action === "tool.call" && e.decision.allowed).length;
        const deniedEvents = events.filter((e) => !e.decision.allowed).length;
        const reads = events.filter((e) => e.request.action === "fs.read" && e.decision.allowed).length;
        const recorded = allowedEvents + deniedEvents;
        const answered = l.allowed + l.denied;
        // A call that got no answer may or may not have been recorded; every answered one must be, once.
        if (recorded < answered || reads < l.allowed) missing += Math.max(answered - recorded, l.allowed - reads);
        if (recorded > answered + l.errors || reads > allowedEvents) extra += Math.max(recorded - answered - l.errors, reads - allowedEvents);
        if (l.errors === 0 && (allowedEvents !== l.allowed || deniedEvents !== l.denied)) misdecided++;
      }
      const keyFile = readFileSync(path.join(s.dir, "secrets", "audit.key"), "utf8");
      const report = await audit.verify({ checkpoints: splitNotes(readFileSync(s.checkpointFile, "utf8")), verifierKey: parseSignerKey(keyFile).verifierKey });
      console.log(`audit:        ${report.events} entries; ${missing} calls without their record, ${extra} records without a call, ${misdecided} sessions whose recorded decisions differ from the driver's`);
      console.log(`verify:       ${report.ok ? "ok" : "FAILED"} against ${report.checkpoints.checked} signed checkpoints; ${report.openIntentCount} intents without an outcome; ${report.problems.length} problems`);
      return unmade === 0 && errors === 0 && wrong === 0 && missing === 0 && extra === 0 && misdecided === 0 && report.ok && report.openIntentCount === 0;
    } finally {
      await audit.close();
    }
  } finally {
    for (const g of running) await g.stop();
    await s.cleanup();
  }
}

let ok = true;
for (const engine of engines) ok = (await run(engine as "sqlite" | "postgres")) && ok;
console.log(`\n${ok ? "all checks passed" : "CHECKS FAILED"} (${((Date.now() - started) / 1000).toFixed(0)} s in all)`);
process.exitCode = ok ? 0 : 1;
