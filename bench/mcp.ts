import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";
import { lazyEntries } from "./built.ts";
import { measureAsync, report } from "./harness.ts";

// The built package, as users run the gateway.
const { listenHttp, openGateway, parseGatewayConfig } = await lazyEntries.mcp();
const { generateKeyPair } = await lazyEntries.token();

/** The session counts of the many-sessions rows. */
const SESSIONS = [16, 200] as const;
/** The SDK client's close sends no DELETE, so every session of the bench stays open until the end: the gateway's per-token and per-principal caps allow them all. */
const SESSION_CAP = SESSIONS.reduce((a, b) => a + b, 0) + 2;

const CALLS = 2_000;

/** A plain MCP SDK server with the same read_file tool, no capability, no audit: the baseline. */
async function plainServer(workspace: string): Promise<{ url: string; close: () => Promise<void> }> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const http = createServer((req, res) => {
    const id = req.headers["mcp-session-id"];
    const known = typeof id === "string" ? transports.get(id) : undefined;
    if (known !== undefined) {
      void known.handleRequest(req, res);
      return;
    }
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sid) => {
        transports.set(sid, transport);
      },
    });
    const server = new McpServer({ name: "plain", version: "0" });
    server.registerTool("read_file", { description: "Read a text file.", inputSchema: { path: z.string() } }, ({ path: p }) => {
      const result = { path: p, text: readFileSync(path.resolve(workspace, p), "utf8") };
      return { content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result };
    });
    void server.connect(transport).then(() => transport.handleRequest(req, res));
  });
  // As the gateway does (listen.limits.keepAliveTimeoutMs): with Node's 5 s, a client on a loaded machine sent calls on
  // connections this server was just closing, and they failed with ECONNRESET.
  http.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    close: async () => {
      await Promise.all([...transports.values()].map((t) => t.close()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => { resolve(); }));
    },
  };
}

/**
 * Calls that failed, by error code (or name) and the server they were made
 * to: a failed call is counted and the run goes on, so one reset connection
 * on a loaded machine costs a row an error count, not the whole section.
 */
const failures = new Map<string, number>();

/** How many calls have failed so far, on any server. */
const failedSoFar = (): number => [...failures.values()].reduce((a, b) => a + b, 0);

function failed(server: string, e: unknown): void {
  const code = (e as { code?: unknown } | null)?.code;
  const kind = typeof code === "string" || typeof code === "number" ? String(code) : e instanceof Error ? e.name : typeof e;
  const cause = (e as { cause?: { code?: unknown } } | null)?.cause?.code;
  const key = `${server}: ${kind}${typeof cause === "string" ? ` (${cause})` : ""}${e instanceof Error ? `: ${e.message.slice(0, 120)}` : ""}`;
  failures.set(key, (failures.get(key) ?? 0) + 1);
}

/** `call`, with a failure counted against `server` instead of thrown. */
const counted =
  <A extends unknown[]>(server: string, call: (...args: A) => Promise<unknown>) =>
  async (...args: A): Promise<unknown> => {
    try {
      return await call(...args);
    } catch (e) {
      failed(server, e);
      return undefined;
    }
  };

/** CPU time (user and system, this process: the client and the server it calls) per call of what ran since `start`. */
const cpuPerCall = (start: NodeJS.CpuUsage, calls: number): number => {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000 / calls;
};

async function connect(url: string, token?: string): Promise<Client> {
  const client = new Client({ name: "bench", version: "0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), token === undefined ? {} : { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  return client;
}

/** Latencies of `CALLS` sequential calls: calls per second, p50 and p99, and ms of CPU per call. */
async function latencies(call: () => Promise<unknown>): Promise<{ perSecond: number; p50: number; p99: number; cpu: number }> {
  for (let i = 0; i < 200; i++) await call();
  const times: number[] = [];
  const failedBefore = failedSoFar();
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < CALLS; i++) {
    const t = performance.now();
    await call();
    times.push(performance.now() - t);
  }
  const total = performance.now() - start;
  const cpuMs = cpuPerCall(cpu, CALLS);
  // Failed calls are counted (see `failures`), not timed as answered ones.
  const answered = CALLS - (failedSoFar() - failedBefore);
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? Number.NaN;
  return { perSecond: (answered / total) * 1000, p50: at(0.5), p99: at(0.99), cpu: cpuMs };
}

/** A rate in calls per second and the CPU time per call (ms) it took. */
interface Rate {
  readonly perSecond: number;
  readonly cpu: number;
}

/** Calls per second with `concurrency` calls in flight at once, `total` calls in all (after a warm-up). */
async function throughput(call: () => Promise<unknown>, concurrency: number, total = 2_000): Promise<Rate> {
  await Promise.all(Array.from({ length: concurrency }, () => call()));
  let started = 0;
  const worker = async () => {
    while (started < total) {
      started += 1;
      await call();
    }
  };
  const failedBefore = failedSoFar();
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { perSecond: ((total - (failedSoFar() - failedBefore)) / (performance.now() - start)) * 1000, cpu: cpuPerCall(cpu, total) };
}

/** Calls per second with one call in flight on each of `clients` (its own session each), `total` calls in all (after a warm-up). */
async function throughputAcross(clients: readonly Client[], call: (client: Client) => Promise<unknown>, total = 2_000): Promise<Rate> {
  await Promise.all(clients.map(call));
  let started = 0;
  const worker = async (client: Client) => {
    while (started < total) {
      started += 1;
      await call(client);
    }
  };
  const failedBefore = failedSoFar();
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(clients.map(worker));
  return { perSecond: ((total - (failedSoFar() - failedBefore)) / (performance.now() - start)) * 1000, cpu: cpuPerCall(cpu, total) };
}

/**
 * One read_file call through the gateway over Streamable HTTP (bearer token,
 * dispatcher, automatic attenuation, confined file system, audit in SQLite)
 * against the same tool on a plain MCP SDK server, in one run.
 */
export async function runMcpBench(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), "agentcap-bench-mcp-"));
  const workspace = path.join(dir, "workspace");
  mkdirSync(workspace);
  writeFileSync(path.join(workspace, "report.txt"), "quarterly numbers\n".repeat(20));
  writeFileSync(path.join(dir, "keys.json"), JSON.stringify({ keyId: 1, ...generateKeyPair() }));
  const gatewayFor = async (audit: Record<string, unknown>, trusted = false) => {
    const config = parseGatewayConfig(
      {
        issuer: "bench",
        keys: { file: "keys.json" },
        tokenStore: { kind: "sqlite", path: "tokens.db" },
        audit,
        policy: { roles: { reader: { tools: ["read_file"], fs: [{ path: "workspace", ops: ["read"] }] } }, principals: { bench: { roles: ["reader"] } } },
        // Trusted: the built-in tools' handlers run in this process instead of the sandbox's worker (tools.trusted).
        tools: { files: { root: "workspace" }, ...(trusted ? { trusted } : {}) },
        // Idle sessions are kept for the whole run: on a loaded machine the many-sessions rows took more than the default
        // 10 minutes, after which the first client's session was gone and its last rows answered 404.
        sessions: { maxPerToken: SESSION_CAP, maxPerPrincipal: SESSION_CAP, idleTimeoutMs: 4 * 3_600_000 },
      },
      dir,
    );
    const gateway = await openGateway(config);
    const served = await listenHttp(gateway, { host: "127.0.0.1", port: 0 });
    const token = gateway.issueToken("bench");
    const client = await connect(served.url, token);
    const capability = await gateway.authenticate(token);
    return {
      client,
      /** `n` more clients with the same token, each in a session of its own. */
      clients: (n: number) => Promise.all(Array.from({ length: n }, () => connect(served.url, token))),
      /** The same call straight to the gateway's dispatcher, with the token's capability: everything but MCP and HTTP. */
      dispatch: () => gateway.dispatcher.call("read_file", { path: "report.txt" }, capability),
      close: async () => {
        await client.close();
        await served.close();
        await gateway.close();
      },
    };
  };
  const plain = await plainServer(workspace);
  const direct = await connect(plain.url);
  const full = await gatewayFor({ kind: "sqlite", path: "audit-full.db" });
  const normal = await gatewayFor({ kind: "sqlite", path: "audit-normal.db", synchronous: "normal" });
  const trusted = await gatewayFor({ kind: "sqlite", path: "audit-trusted.db", synchronous: "normal" }, true);
  const args = { name: "read_file", arguments: { path: "report.txt" } };
  try {
    for (const g of [full, normal, trusted]) {
      const check = await g.client.callTool(args);
      if (check.isError === true) throw new Error(`the gateway refused the bench call: ${JSON.stringify(check.content)}`);
    }
    const PLAIN = "plain MCP SDK server (baseline)";
    const FULL = "gateway, audit SQLite synchronous=full";
    const NORMAL = "gateway, audit SQLite synchronous=normal";
    const TRUSTED = "  the same, built-in tools trusted";
    const servers = [
      [PLAIN, counted(PLAIN, () => direct.callTool(args))],
      [FULL, counted(FULL, () => full.client.callTool(args))],
      [NORMAL, counted(NORMAL, () => normal.client.callTool(args))],
      [TRUSTED, counted(TRUSTED, () => trusted.client.callTool(args))],
    ] as const;
    const cpuNote = "  CPU/call: this process's CPU time per call, client and server together (the client's share is the same in every row)";
    const rows = [];
    for (const [name, call] of servers) rows.push([name, await latencies(call)] as const);
    const base = (rows[0] as (typeof rows)[number])[1];
    console.log("\nmcp: one read_file call over Streamable HTTP, sequential, SDK client (token, dispatch, attenuation, confined fs, audit)");
    console.log(`  ${"server".padEnd(44)} ${"calls/s".padStart(10)} ${"p50".padStart(10)} ${"p99".padStart(10)} ${"p50 overhead".padStart(13)} ${"CPU/call".padStart(10)} ${"ratio".padStart(6)}`);
    for (const [name, r] of rows) {
      const overhead = r === base ? "base" : `${(((r.p50 - base.p50) / base.p50) * 100).toFixed(1)}%`;
      console.log(
        `  ${name.padEnd(44)} ${r.perSecond.toFixed(0).padStart(10)} ${`${r.p50.toFixed(3)} ms`.padStart(10)} ${`${r.p99.toFixed(3)} ms`.padStart(10)} ${overhead.padStart(13)} ${`${r.cpu.toFixed(3)} ms`.padStart(10)} ${(r.cpu / base.cpu).toFixed(2).padStart(6)}`,
      );
    }
    console.log("  target: gateway overhead under 15% of the plain server's latency");
    console.log(cpuNote);

    // What MCP and HTTP add to the dispatcher's own work, in the same process and audit store.
    const dispatched = await latencies(normal.dispatch);
    const viaMcp = (rows[2] as (typeof rows)[number])[1];
    console.log("\nmcp: the same call straight to the dispatcher (audit normal) against through MCP over HTTP");
    console.log(`  dispatcher: p50 ${dispatched.p50.toFixed(3)} ms, p99 ${dispatched.p99.toFixed(3)} ms, ${dispatched.perSecond.toFixed(0)} calls/s, ${dispatched.cpu.toFixed(3)} ms CPU per call`);
    console.log(`  through MCP: p50 ${(viaMcp.p50 / dispatched.p50).toFixed(2)}x, p99 ${(viaMcp.p99 / dispatched.p99).toFixed(2)}x the dispatcher's; MCP and HTTP add ${(viaMcp.p50 - dispatched.p50).toFixed(3)} ms at p50`);
    // The handler in the sandbox's worker: a call crosses threads to run it and again for each resource it uses.
    const unsandboxed = await latencies(trusted.dispatch);
    console.log(`  dispatcher with the built-in tools trusted: p50 ${unsandboxed.p50.toFixed(3)} ms, ${unsandboxed.cpu.toFixed(3)} ms CPU per call; the sandbox adds ${(dispatched.p50 - unsandboxed.p50).toFixed(3)} ms at p50 and ${(dispatched.cpu - unsandboxed.cpu).toFixed(3)} ms of CPU`);

    const rateTable = (title: string, columns: readonly string[], measured: readonly (readonly [string, readonly Rate[]])[]) => {
      console.log(`\n${title}`);
      console.log(`  ${"server".padEnd(44)} ${columns.map((c) => `${c.padStart(12)} ${"ratio".padStart(6)} ${"CPU/call".padStart(10)} ${"ratio".padStart(6)}`).join(" ")}`);
      const baseRates = (measured[0] as (typeof measured)[number])[1];
      for (const [name, rates] of measured) {
        const cells = rates.map((r, i) => {
          const b = baseRates[i] ?? r;
          return `${r.perSecond.toFixed(0).padStart(12)} ${(r.perSecond / b.perSecond).toFixed(2).padStart(6)} ${`${r.cpu.toFixed(3)} ms`.padStart(10)} ${(r.cpu / b.cpu).toFixed(2).padStart(6)}`;
        });
        console.log(`  ${name.padEnd(44)} ${cells.join(" ")}`);
      }
      console.log("  target: the gateway's throughput at least 0.85 of the plain server's");
      console.log(cpuNote);
    };

    // Many calls in flight on one session: the gateway runs sessions.maxCallsPerSession (default 16) of them at once and queues the rest.
    const concurrent: [string, Rate[]][] = [];
    for (const [name, call] of servers) concurrent.push([name, [await throughput(call, 16), await throughput(call, 200)]]);
    rateTable("mcp: calls/s with 16 and 200 calls in flight on one session", ["16 at once", "200 at once"], concurrent);

    // Many sessions, one call in flight on each: the gateway's per-session queue (sessions.maxCallsPerSession) plays no part,
    // its gateway-wide limit (sessions.maxConcurrentCalls, default 64) does.
    const fleets = [
      [PLAIN, (n: number) => Promise.all(Array.from({ length: n }, () => connect(plain.url)))],
      [FULL, full.clients],
      [NORMAL, normal.clients],
      [TRUSTED, trusted.clients],
    ] as const;
    const across: [string, Rate[]][] = [];
    for (const [name, open] of fleets) {
      const rates: Rate[] = [];
      const call = counted(name, (c: Client) => c.callTool(args));
      for (const n of SESSIONS) {
        const clients = await open(n);
        try {
          rates.push(await throughputAcross(clients, call));
        } finally {
          await Promise.all(clients.map((c) => c.close()));
        }
      }
      across.push([name, rates]);
    }
    rateTable(`mcp: calls/s with ${SESSIONS.join(" and ")} sessions, one call in flight on each`, SESSIONS.map((n) => `${String(n)} sessions`), across);
    const [plainCall, fullCall, normalCall, trustedCall] = servers.map(([, call]) => call) as [() => Promise<unknown>, () => Promise<unknown>, () => Promise<unknown>, () => Promise<unknown>];
    report("mcp: median time per call over 7 rounds", await measureAsync(PLAIN, plainCall, 500), [
      await measureAsync("gateway, audit synchronous=full", fullCall, 500),
      await measureAsync("gateway, audit synchronous=normal", normalCall, 500),
      await measureAsync("gateway, audit normal, built-in tools trusted", trustedCall, 500),
    ]);
    // A rate above counts answered calls only; a call the SDK client gave up on (its 60 s request timeout, -32001) is listed here.
    console.log(`\nmcp: failed calls (counted, not retried): ${failures.size === 0 ? "none" : ""}`);
    for (const [what, n] of failures) console.log(`  ${String(n).padStart(6)}  ${what}`);
  } finally {
    await direct.close();
    await plain.close();
    await full.close();
    await normal.close();
    await trusted.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
