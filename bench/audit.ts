import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { planAppend, type StoredLink } from "../src/audit/append-plan.ts";
import type { ChainHead } from "../src/audit/chain.ts";
import { Frontier } from "../src/audit/merkle.ts";
import { encodeEvent, encodeValidEvent, type EncodedEvent } from "../src/audit/encoding.ts";
import { openAuditStore, type AuditStoreOptions } from "../src/audit/open.ts";
import type { AuditQuery } from "../src/audit/query.ts";
import { compileRedaction } from "../src/audit/redaction.ts";
import { EVENT_COLUMNS } from "../src/audit/schema.ts";
import type { AuditStore } from "../src/audit/store.ts";
import { generateCheckpointKey, memoryCheckpointSink, parseSignerKey, signCheckpoint } from "../src/audit/checkpoint.ts";
import { verifyCheckpoint, verifyProof } from "../src/audit/proof-verifier.ts";
import { auditSubject, type AuditEvent, type AuditIntent, type AuditSink } from "../src/kernel/audit-sink.ts";
import { defineTool } from "../src/tools/define.ts";
import { createDispatcher } from "../src/tools/dispatcher.ts";
import { z } from "zod";
import { caretaker } from "../src/kernel/internal.ts";
import { check, createManualClock, createMint, narrow, type Capability, type Grant, type Request } from "../src/index.ts";
import { explorerRequests } from "./explorer.ts";
import { measure, measureAsync, report } from "./harness.ts";

/*
 * The audit log: events per second written to SQLite and Postgres, the
 * latency auditing adds to a tool call (ratio to the same call unaudited, in
 * one run), and query times over a large log (SQLite only; its size is
 * AGENTCAP_BENCH_AUDIT_EVENTS, default 1,000,000). Postgres parts run when
 * DATABASE_URL is set, each in its own schema, dropped afterwards.
 */

const DAY = 86_400_000;
/** Tool calls per session in the large log; each call makes three events. */
const CALLS_PER_SESSION = 100;
const NOW = Date.UTC(2025, 0, 31, 12);

const rootGrant: Grant = {
  tools: ["search", "read_file", "fetch"],
  fs: [{ path: "/srv/data", ops: ["read", "list"] }],
  http: [{ origin: "https://api.example.com", methods: ["GET"] }],
};

function event(cap: Capability, request: Request, at: number, tool: string | null): AuditEvent {
  const decision = check(cap, request);
  return {
    id: randomUUID(),
    at,
    durationMs: 1.25,
    kind: request.action === "tool.call" ? "tool" : "resource",
    tool,
    request,
    decision,
    outcome: decision.allowed ? { ok: true, resultBytes: 2048 } : { ok: false, errorCode: decision.code, message: decision.reason },
    subject: auditSubject(cap),
  };
}

/**
 * One agent session's worth of events: a root minted for the principal, a
 * revocable session link labelled { session, task }, and per tool call a
 * capability narrowed to that call, used for the call and two resource
 * accesses. About one call in fifty asks for something outside its grant.
 */
function sessionEvents(mint: ReturnType<typeof createMint>, principal: string, session: number, calls: number, at: (i: number) => number) {
  const root = mint.issue({ id: principal, tenants: [`t-${principal}`] }, { requestId: `req-${String(session)}` });
  const lease = caretaker(narrow(root, { tools: ["search", "read_file"], fs: rootGrant.fs ?? [], http: rootGrant.http ?? [] }), { session: `s-${String(session)}`, task: `task-${String(session)}` });
  const events: AuditEvent[] = [];
  const callCaps: Capability[] = [];
  for (let c = 0; c < calls; c++) {
    const dir = `/srv/data/${principal}/${String(c % 10)}`;
    const cap = narrow(lease.capability, { tools: ["search"], fs: [{ path: dir, ops: ["read"] }], http: [{ origin: "https://api.example.com", methods: ["GET"], pathPrefix: "/v1/" }] });
    callCaps.push(cap);
    const t = at(events.length);
    const denied = c % 50 === 49;
    events.push(event(cap, { action: "tool.call", tool: "search" }, t, "search"));
    events.push(event(cap, { action: "fs.read", path: denied ? "/srv/data/secrets/keys.txt" : `${dir}/doc-${String(c)}.txt` }, t + 1, "search"));
    events.push(event(cap, { action: "http.request", method: "GET", url: `https://api.example.com/v1/search?q=${String(c)}` }, t + 2, "search"));
  }
  return { root, session: lease.capability, callCaps, events };
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function fmtRate(events: number, seconds: number): string {
  return `${Math.round(events / seconds).toLocaleString("en-US")} events/s`;
}

/** One durability mode of one engine. */
interface Mode {
  readonly name: string;
  readonly open: (tag: string, extra?: Partial<AuditStoreOptions>) => Promise<AuditStore>;
}

interface Engine {
  readonly modes: readonly Mode[];
  readonly cleanup: () => Promise<void>;
}

function sqliteEngine(dir: string): Engine {
  const mode = (synchronous: "full" | "normal"): Mode => ({
    name: `SQLite synchronous=${synchronous}`,
    open: (tag, extra = {}) => openAuditStore({ kind: "sqlite", path: join(dir, `${tag}-${synchronous}.db`), synchronous, ...extra } as AuditStoreOptions),
  });
  return { modes: [mode("full"), mode("normal")], cleanup: () => Promise.resolve() };
}

function postgresEngine(url: string): Engine {
  const schemas: string[] = [];
  const mode = (synchronousCommit: "on" | "off"): Mode => ({
    name: `Postgres synchronous_commit=${synchronousCommit}`,
    open: (tag, extra = {}) => {
      const schema = `agentcap_bench_${tag}_${synchronousCommit}_${String(process.pid)}`;
      schemas.push(schema);
      return openAuditStore({ kind: "postgres", url, schema, synchronousCommit, ...extra });
    },
  });
  return {
    modes: [mode("on"), mode("off")],
    cleanup: async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
      await client.end();
    },
  };
}

/** The intent part of an event: what a resource records before it acts. */
function intentOf(event: AuditEvent): AuditIntent {
  return { id: event.id, at: event.at, kind: event.kind, tool: event.tool, request: event.request, decision: event.decision, subject: event.subject };
}

/**
 * Entries per second written by one writer awaiting each, and by 1,000
 * concurrent writers (group commit), for whole events and for actions
 * recorded as an intent (awaited, durable) and its outcome (written with the
 * next transaction). Then verify's speed over what was written.
 */
async function writeThroughput(mode: Mode): Promise<void> {
  const mint = createMint({ issuer: "bench", clock: createManualClock(NOW), policy: () => rootGrant });
  const { events } = sessionEvents(mint, "writer", 1, 6_000, (i) => NOW + i);
  // Only allowed invocations act, so only they record intents.
  const acting = events.slice(6_000).filter((e) => e.decision.allowed);
  const store = await mode.open("writes");
  const label = (what: string) => `  ${mode.name.padEnd(32)} ${what.padEnd(48)}`;
  try {
    const one = events.slice(0, 1_000);
    const oneSeconds = await timed(async () => {
      for (const e of one) await store.write(e);
    });
    const many = events.slice(1_000, 6_000);
    const manySeconds = await timed(async () => {
      for (let i = 0; i < many.length; i += 1_000) await Promise.all(many.slice(i, i + 1_000).map((e) => store.write(e)));
    });
    const act = async (e: AuditEvent) => {
      await store.intend(intentOf(e));
      await store.complete({ id: e.id, durationMs: e.durationMs, outcome: e.outcome });
    };
    const actsOne = acting.slice(0, 1_000);
    const actsOneSeconds = await timed(async () => {
      for (const e of actsOne) await act(e);
    });
    const actsMany = acting.slice(1_000, 6_000);
    const actsManySeconds = await timed(async () => {
      for (let i = 0; i < actsMany.length; i += 1_000) await Promise.all(actsMany.slice(i, i + 1_000).map(act));
    });
    const verifySeconds = await timed(() => store.verify());
    const entries = one.length + many.length + 2 * (actsOne.length + actsMany.length);
    console.log(`${label("events, one writer awaiting each")}${fmtRate(one.length, oneSeconds).padStart(18)}`);
    console.log(`${label("events, 1,000 concurrent writers")}${fmtRate(many.length, manySeconds).padStart(18)}`);
    console.log(`${label("actions (intent + outcome), one at a time")}${fmtRate(actsOne.length, actsOneSeconds).replace("events", "actions").padStart(18)}`);
    console.log(`${label("actions (intent + outcome), 1,000 concurrent")}${fmtRate(actsMany.length, actsManySeconds).replace("events", "actions").padStart(18)}`);
    console.log(`${label("verify (leaves, chain, tree, columns, index)")}${fmtRate(entries, verifySeconds).replace("events", "entries").padStart(18)}`);
  } finally {
    await store.close();
  }
}

/**
 * What auditing adds to one tool call through the dispatcher: the same call
 * with a sink that keeps nothing (baseline) and with each store, one call at
 * a time (an intent awaited before the handler, its outcome written with the
 * next call's transaction).
 */
async function toolCallOverhead(engines: readonly Engine[]): Promise<void> {
  const mint = createMint({ issuer: "bench", policy: () => rootGrant });
  const cap = narrow(mint.issue({ id: "overhead" }), { tools: ["search"] });
  const search = defineTool({ name: "search", description: "Searches.", input: z.object({ q: z.string() }), needs: () => [] }, () => "result");
  const discard: AuditSink = { intend: () => undefined, complete: () => undefined, write: () => undefined };
  const baseline = await measureAsync("tool call, audit sink keeping nothing (baseline)", () => createCall(discard)(), 2_000);
  function createCall(sink: AuditSink) {
    const dispatcher = createDispatcher({ tools: [search], audit: sink });
    return () => dispatcher.call("search", { q: "x" }, cap);
  }
  const rows = [];
  const stores: AuditStore[] = [];
  try {
    for (const mode of engines.flatMap((e) => e.modes)) {
      const store = await mode.open(`overhead_${String(stores.length)}`);
      stores.push(store);
      rows.push(await measureAsync(`tool call audited: ${mode.name}`, createCall(store), 200));
    }
  } finally {
    for (const s of stores) await s.close();
  }
  report("audit: latency per tool call, one call at a time (added = per op minus baseline)", baseline, rows);
  for (const r of rows) console.log(`  ${r.name.padEnd(52)} adds ${((r.nsPerOp - baseline.nsPerOp) / 1000).toFixed(1).padStart(8)} µs`);
}

/** Signing a checkpoint, proving an event, and checking the proof with the separate verifier, over a log of 100,000 entries. */
async function checkpointsAndProofs(dir: string): Promise<void> {
  const key = generateCheckpointKey("bench.example/audit");
  const sink = memoryCheckpointSink();
  const path = join(dir, "proofs.db");
  const loaded = await bulkLoad(path, 100_000, () => undefined);
  const store = await openAuditStore({ kind: "sqlite", path, checkpoints: { key: key.signerKey, sink, everyEntries: 1_000_000 } });
  try {
    const signer = parseSignerKey(key.signerKey);
    const root = Buffer.alloc(32, 1);
    const baseline = measure("SHA-256 of one 1 KiB entry (baseline)", () => createHash("sha256").update(KIB).digest(), 20_000);
    await store.checkpoint();
    const [record] = await store.query({ after: Math.floor(loaded / 2), limit: 1 });
    const id = record?.event.id ?? "";
    const bundle = await store.prove(id);
    const rows = [
      measure("sign a checkpoint (Ed25519, signed note)", () => signCheckpoint(signer, "bench.example/audit", loaded, root), 2_000),
      measure("verify a checkpoint's signature", () => verifyCheckpoint(sink.notes[0] ?? "", key.verifierKey), 2_000),
      await measureAsync(`prove an event in ${loaded.toLocaleString("en-US")} entries (SQLite lookups)`, () => store.prove(id), 200),
      measure("verify the proof with the public key alone", () => verifyProof(bundle, key.verifierKey), 2_000),
      await measureAsync("write a checkpoint to the sink (head read, root, sign)", () => store.checkpoint(), 200),
    ];
    report("audit: checkpoints and proofs", baseline, rows);
  } finally {
    await store.close();
  }
}

const KIB = Buffer.alloc(1024, 7);

/**
 * Loads `total` events into a fresh SQLite log the way a bulk import would:
 * indexes dropped, one transaction per session, indexes built
 * again at the end. Events come from real capabilities and go through the
 * store's own encoding and chaining (`encodeValidEvent`, `planAppend`), only
 * without the per-event validation and the per-event index maintenance that
 * the write-throughput part measures; a sample is checked to encode exactly as
 * `write` would, and the loaded log is checked with a lineage query.
 */
async function bulkLoad(path: string, total: number, onSession: (k: number, session: ReturnType<typeof sessionEvents>) => void): Promise<number> {
  await (await openAuditStore({ kind: "sqlite", path })).close();
  const db = new Database(path);
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -262144");
  const indexes = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL").all() as { name: string; sql: string }[];
  for (const i of indexes) db.exec(`DROP INDEX ${i.name}`);
  const insertEvent = db.prepare(`INSERT INTO audit_events (${EVENT_COLUMNS.join(", ")}) VALUES (${EVENT_COLUMNS.map(() => "?").join(", ")})`);
  const insertLink = db.prepare("INSERT INTO audit_links (num, id, summary) VALUES (?, ?, ?)");
  const insertEventLink = db.prepare("INSERT INTO audit_event_links (link_num, event_seq, position) VALUES (?, ?, ?)");
  const insertNode = db.prepare("INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?)");
  const links = new Map<string, StoredLink>();
  let head: ChainHead | null = null;
  const tree = new Frontier();
  const append = db.transaction((batch: readonly EncodedEvent[]) => {
    const plan = planAppend(head, tree, batch, { hasEntry: () => false, link: (id) => links.get(id), lastLinkNum: links.size });
    for (const n of plan.tree) insertNode.run(n.level, n.idx, n.hash);
    for (const l of plan.links) {
      links.set(l.id, { num: l.num, text: l.summary });
      insertLink.run(l.num, l.id, l.summary);
    }
    for (const e of plan.events) insertEvent.run(EVENT_COLUMNS.map((c) => e[c]));
    for (const l of plan.eventLinks) insertEventLink.run(l.link_num, l.event_seq, l.position);
    const last = plan.events.at(-1);
    if (last !== undefined) head = { seq: last.seq, hash: last.hash };
  });

  const redact = compileRedaction();
  const mint = createMint({ issuer: "bench", clock: createManualClock(NOW), policy: () => rootGrant });
  const sessions = Math.ceil(total / (CALLS_PER_SESSION * 3));
  let written = 0;
  // One session per transaction: small batches keep the encoded events young, which the garbage collector rewards.
  for (let k = 0; k < sessions && written < total; k++) {
    // Spread over 30 days, so "today" is about a thirtieth of the log.
    const start = NOW - 30 * DAY + Math.floor((k / sessions) * 30 * DAY);
    const session = sessionEvents(mint, `user-${String(k % 200)}`, k, CALLS_PER_SESSION, (i) => start + i * 1000);
    onSession(k, session);
    const events = session.events.slice(0, total - written);
    if (k === 0) {
      for (const e of events.slice(0, 5)) {
        if (encodeEvent(e, redact).body !== encodeValidEvent(e, redact).body) throw new Error("the bulk loader encodes differently from write()");
      }
    }
    append(events.map((e) => encodeValidEvent(e, redact)));
    written += events.length;
  }
  for (const i of indexes) db.exec(i.sql);
  db.exec("ANALYZE");
  db.close();
  return written;
}

async function largeLog(dir: string, total: number): Promise<void> {
  const path = join(dir, "large.db");
  const sessions = Math.ceil(total / (CALLS_PER_SESSION * 3));
  const middle = Math.floor(sessions / 2);
  const probes = new Map<number, ReturnType<typeof sessionEvents>>();
  const started = process.hrtime.bigint();
  const written = await bulkLoad(path, total, (k, session) => {
    if (k === middle || k === sessions - 1) probes.set(k, session);
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const size = statSync(path).size + (statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0);
  console.log(
    `\naudit: queries over ${written.toLocaleString("en-US")} events in SQLite (bulk-loaded in ${seconds.toFixed(1)} s; ${Math.round(size / written)} bytes per event on disk; Postgres not loaded)`,
  );
  const p = probes.get(middle);
  const latest = probes.get(sessions - 1);
  if (p === undefined || latest === undefined) throw new Error("unreachable: both probe sessions are always built");
  const store = await openAuditStore({ kind: "sqlite", path, readOnly: true });
  try {
    const sample = await store.query({ descendantsOf: p.session.id, limit: 10_000 });
    if (sample.length !== p.events.length || sample[0]?.event.id !== p.events[0]?.id) throw new Error("the loaded log does not answer a lineage query correctly");
    const q = async (name: string, query: AuditQuery) => {
      const rows = (await store.query(query)).length;
      return measureAsync(`${name} (${String(rows)} rows)`, async () => {
        await store.query(query);
      }, 20);
    };
    const call = p.callCaps[7] as Capability;
    const today = latest.root.mint.principal;
    const baseline = await q("first page of the log, no filter (baseline)", { limit: 100 });
    const rows = [
      await q("descendants of a session link, first page", { descendantsOf: p.session.id, limit: 100 }),
      await q("descendants of a session link, all", { descendantsOf: p.session.id, limit: 10_000 }),
      await q("descendants of one tool call's capability", { descendantsOf: call.id }),
      await q("descendants of a root, newest first", { descendantsOf: p.root.id, order: "desc", limit: 100 }),
      await q("capability hash: did it ever read a file?", { capabilityHash: call.hash, action: "fs.read" }),
      await q(`principal ${today}, last 24 h`, { principal: today, since: NOW - DAY, limit: 100 }),
      await q("root request id", { requestId: p.root.mint.requestId, limit: 1_000 }),
      await q("denied only, newest first", { decision: "denied", order: "desc", limit: 100 }),
      await q("resource prefix (a directory)", { resourcePrefix: "/srv/data/user-42/3/", limit: 100 }),
      await q("tenant, last 7 days", { tenant: "t-user-99", since: NOW - 7 * DAY, limit: 100 }),
      await q("action (a third of the log), newest first", { action: "http.request", order: "desc", limit: 100 }),
      await q("time range alone, last hour", { since: NOW - 3_600_000, limit: 100 }),
    ];
    report("audit: query time over the large log (20 queries per round)", baseline, rows);
    await explorerRequests(store, { root: p.root, session: p.session, principal: p.root.mint.principal, tenant: p.root.mint.tenants[0] ?? "" });
  } finally {
    await store.close();
  }
}

/** Write throughput, tool-call overhead, and queries over a large log. */
export async function runAuditBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "agentcap-bench-audit-"));
  const url = process.env.DATABASE_URL;
  const engines = [sqliteEngine(dir), ...(url === undefined ? [] : [postgresEngine(url)])];
  const total = Number(process.env.AGENTCAP_BENCH_AUDIT_EVENTS ?? 1_000_000);
  if (!Number.isSafeInteger(total) || total < 1_000) throw new Error("AGENTCAP_BENCH_AUDIT_EVENTS must be a whole number of at least 1000");
  try {
    console.log("\naudit: write throughput (SQLite synchronous=full and Postgres synchronous_commit=on: each commit durable before it resolves)");
    if (url === undefined) console.log("  Postgres skipped: set DATABASE_URL to include it");
    for (const mode of engines.flatMap((e) => e.modes)) await writeThroughput(mode);
    await toolCallOverhead(engines);
    await checkpointsAndProofs(dir);
    await largeLog(dir, total);
  } finally {
    for (const engine of engines) await engine.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
