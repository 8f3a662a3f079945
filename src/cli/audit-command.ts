/**
 * `agentcap audit verify | query | prove | verify-proof | export | verify-export | prune | keygen`: the audit
 * log from the command line. prune opens the log for writing, with its
 * checkpoint key; verify, query, prove and export open it read-only: the SQLite file (default `.agentcap/audit.db`), with
 * --database-url a Postgres schema, or with --config the log of that gateway
 * (and its checkpoints). verify-proof needs no log at all, only the proof
 * and the public key.
 */
import { existsSync } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import {
  DEFAULT_POSTGRES_SCHEMA,
  DEFAULT_SQLITE_PATH,
  formatJsonLines,
  formatPruneReport,
  formatShadowGroups,
  formatTable,
  formatVerifyReport,
  MAX_LIMIT,
  printable,
  prunedNote,
  shadowGroups,
} from "../audit/internal.js";
import {
  AUDIT_ACTIONS,
  generateCheckpointKey,
  isOtlpLine,
  linesFromOtlp,
  openAuditStore,
  OTLP_BATCH,
  otlpRequest,
  retentionCutoff,
  splitNotes,
  verifyExport,
  verifyProof,
  type AuditQuery,
  type AuditRecord,
  type ExportLine,
  type AuditStore,
} from "../audit/index.js";
import { InvalidInput, type Action } from "../kernel/index.js";
import { appendOutputFile, readInputFile, writeOutputFile } from "./files.js";
import { parseTimeArgument } from "./time-argument.js";
import { defined } from "../kernel/internal.js";
import { gatewayAuditLog, openGatewayAuditLog } from "./gateway-stores.js";

/** Where the commands write, and how they set the exit code; the defaults are the process's. */
export interface AuditCommandIo {
  readonly out: (text: string) => void;
  readonly setExitCode: (code: number) => void;
}

const defaultIo: AuditCommandIo = {
  out: (text) => process.stdout.write(text),
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

interface StoreOptions {
  readonly config?: string;
  readonly store?: string;
  readonly databaseUrl?: string;
  readonly schema?: string;
}

/** A log as the options name it: a SQLite file or a Postgres schema, with the checkpoints of a gateway's log named by --config. */
interface Log {
  readonly store: string;
  readonly databaseUrl?: string;
  readonly schema: string;
  readonly checkpoints?: { readonly file: string; readonly publicKey: string };
}

/** The log the options name: the one of the gateway --config names, or --store / --database-url. */
async function logOf(opts: StoreOptions): Promise<Log> {
  if (opts.config === undefined) return { store: opts.store ?? DEFAULT_SQLITE_PATH, schema: opts.schema ?? DEFAULT_POSTGRES_SCHEMA, ...defined({ databaseUrl: opts.databaseUrl }) };
  if (opts.store !== undefined || opts.databaseUrl !== undefined || opts.schema !== undefined) throw new InvalidInput("--config names the gateway's audit log; leave out --store, --database-url and --schema");
  const log = await gatewayAuditLog(opts.config);
  return { store: log.store ?? DEFAULT_SQLITE_PATH, schema: log.schema ?? DEFAULT_POSTGRES_SCHEMA, ...defined({ databaseUrl: log.databaseUrl, checkpoints: log.checkpoints }) };
}

async function withStore(log: Log, run: (store: AuditStore) => Promise<void>): Promise<void> {
  const store = await (log.databaseUrl === undefined
    ? openAuditStore({ kind: "sqlite", path: log.store, readOnly: true })
    : openAuditStore({ kind: "postgres", url: log.databaseUrl, schema: log.schema, readOnly: true }));
  try {
    await run(store);
  } finally {
    await store.close();
  }
}

function storeOptions(cmd: Command): Command {
  return cmd
    .option("--config <file>", "the audit log of the gateway of this configuration (and its checkpoint file and key, when it signs checkpoints)")
    .option("--store <file>", `the SQLite audit log (default ${DEFAULT_SQLITE_PATH})`)
    .option("--database-url <url>", "use the Postgres audit log at this connection string instead")
    .option("--schema <name>", `the Postgres schema holding the log (default ${DEFAULT_POSTGRES_SCHEMA})`);
}

function integer(value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError("must be a non-negative integer");
  return Number(value);
}

function time(value: string): number {
  try {
    return parseTimeArgument(value);
  } catch (e) {
    throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
  }
}

/** A file's text, or InvalidInput naming the option and the file. */
function readText(path: string, option: string): string {
  return readInputFile(path, `${option} file`);
}

/** A verifier key given as itself or as a file holding it. */
function verifierKey(value: string): string {
  return existsSync(value) ? readText(value, "--public-key").trim() : value;
}

/** The signed checkpoints in a checkpoint file (notes separated by blank lines). */
function checkpointNotes(path: string): string[] {
  const notes = splitNotes(readText(path, "--checkpoints"));
  if (notes.length === 0) throw new InvalidInput(`--checkpoints: ${path} holds no signed checkpoint`);
  return notes;
}

interface QueryOptions extends StoreOptions {
  readonly principal?: string;
  readonly request?: string;
  readonly descendantsOf?: string;
  readonly capabilityHash?: string;
  readonly tool?: string;
  readonly action?: Action;
  readonly resourcePrefix?: string;
  readonly denied?: boolean;
  readonly allowed?: boolean;
  readonly revoked?: boolean;
  readonly since?: number;
  readonly until?: number;
  readonly tenant?: string;
  readonly session?: string;
  readonly task?: string;
  readonly limit: number;
  readonly after?: number;
  readonly desc?: boolean;
  readonly all?: boolean;
  readonly shadowDiff?: boolean;
  readonly format: "table" | "jsonl";
}

/** The typed query the options describe; the store validates it further. */
function queryOf(o: QueryOptions): AuditQuery {
  if (o.denied === true && o.allowed === true) throw new InvalidInput("choose one of --denied and --allowed");
  if (o.revoked === true && o.action !== undefined && o.action !== "revoke") throw new InvalidInput("--revoked lists revocations (action revoke); it cannot be combined with another --action");
  const pick = <K extends keyof AuditQuery>(key: K, value: AuditQuery[K] | undefined) => (value === undefined ? {} : { [key]: value });
  return {
    ...pick("principal", o.principal),
    ...pick("requestId", o.request),
    ...pick("descendantsOf", o.descendantsOf),
    ...pick("capabilityHash", o.capabilityHash),
    ...pick("tool", o.tool),
    ...pick("action", o.revoked === true ? "revoke" : o.action),
    ...pick("resourcePrefix", o.resourcePrefix),
    ...pick("decision", o.denied === true ? "denied" : o.allowed === true ? "allowed" : undefined),
    ...pick("since", o.since),
    ...pick("until", o.until),
    ...pick("tenant", o.tenant),
    ...pick("sessionId", o.session),
    ...pick("taskId", o.task),
    ...pick("after", o.after),
    limit: o.limit,
    order: o.desc === true ? "desc" : "asc",
  };
}

/** Registers the `audit` command group (`verify`, `query`, `prove`, `verify-proof`, `export`, `verify-export`, `prune`, `keygen`) on `program` and returns the group. */
export function registerAuditCommand(program: Command, io: AuditCommandIo = defaultIo): Command {
  const audit = program.command("audit").description("the capability-aware audit log: verify it against its signed checkpoints, query it by lineage, principal, resource…, prove an event to a third party");

  storeOptions(audit.command("verify"))
    .description("walk the whole log against its signed checkpoints and report every edited, deleted, reordered, inserted or truncated entry; exit code 1 when tampered")
    .option("--checkpoints <file>", "the log's checkpoint file (signed notes, as the store writes them; default with --config: the gateway's)")
    .option("--public-key <key|file>", "the checkpoints' verifier key, <name>+<id>+<base64 key>, or a file holding it (default with --config: the gateway's)", verifierKey)
    .option("--max-problems <n>", "stop after this many problems", integer, 100)
    .option("--json", "print the report as JSON")
    .action(async (opts: StoreOptions & { checkpoints?: string; publicKey?: string; maxProblems: number; json?: boolean }) => {
      if ((opts.checkpoints === undefined) !== (opts.publicKey === undefined)) throw new InvalidInput("give --checkpoints and --public-key together");
      const log = await logOf(opts);
      const against = opts.checkpoints === undefined ? log.checkpoints : { file: opts.checkpoints, publicKey: opts.publicKey ?? "" };
      const signed = against === undefined ? {} : { checkpoints: checkpointNotes(against.file), verifierKey: against.publicKey };
      await withStore(log, async (store) => {
        const report = await store.verify({ maxProblems: opts.maxProblems, ...signed });
        io.out(opts.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatVerifyReport(report));
        if (!report.ok) io.setExitCode(1);
      });
    });

  storeOptions(audit.command("prove"))
    .description("export an event (its entries) with inclusion proofs against the latest signed checkpoint covering it, for anyone holding the public key to verify")
    .argument("<event-id>", "the event's id, as audit query shows it")
    .option("--checkpoints <file>", "the log's checkpoint file (default with --config: the gateway's)")
    .option("--public-key <key|file>", "use only checkpoints that verify with this key (default with --config: the gateway's)", verifierKey)
    .option("--out <file>", "write the proof here instead of standard output")
    .action(async (id: string, opts: StoreOptions & { checkpoints?: string; publicKey?: string; out?: string }) => {
      const log = await logOf(opts);
      const file = opts.checkpoints ?? log.checkpoints?.file;
      if (file === undefined) throw new InvalidInput("give --checkpoints: the log's checkpoint file");
      const notes = checkpointNotes(file);
      const key = opts.publicKey ?? (opts.checkpoints === undefined ? log.checkpoints?.publicKey : undefined);
      await withStore(log, async (store) => {
        const proof = `${JSON.stringify(await store.prove(id, { checkpoints: notes, ...defined({ verifierKey: key }) }), null, 2)}\n`;
        if (opts.out === undefined) io.out(proof);
        else writeOutputFile(opts.out, proof, "--out");
      });
    });

  storeOptions(audit.command("export"))
    .description("write the log's entries as JSON lines, each with its sequence number and inclusion proof against the latest signed checkpoint, for a copy elsewhere (a SIEM) that anyone holding the public key can check for gaps and edits")
    .option("--since <time>", "from the first entry at or after this time (same forms as audit query)", time)
    .option("--until <time>", "up to the last entry before this time", time)
    .option("--checkpoints <file>", "the log's checkpoint file (default: the gateway's with --config, else the one beside the SQLite log)")
    .option("--public-key <key|file>", "use only checkpoints that verify with this key", verifierKey)
    .option("--out <file>", "write the export here instead of standard output")
    .addOption(new Option("--format <format>", "jsonl: one JSON object per line; otlp: OpenTelemetry logs (OTLP JSON, one request per line), each record's body an export line").choices(["jsonl", "otlp"]).default("jsonl"))
    .action(async (opts: StoreOptions & { since?: number; until?: number; checkpoints?: string; publicKey?: string; out?: string; format: "jsonl" | "otlp" }) => {
      const log = await logOf(opts);
      const notes = opts.checkpoints ?? log.checkpoints?.file ?? (log.databaseUrl === undefined ? `${log.store}.checkpoints` : undefined);
      if (notes === undefined) throw new InvalidInput("give --checkpoints: the Postgres log's checkpoint file");
      const checkpoints = checkpointNotes(notes);
      const key = opts.publicKey ?? (opts.checkpoints === undefined ? log.checkpoints?.publicKey : undefined);
      await withStore(log, async (store) => {
        const out = opts.out;
        const write =
          out === undefined
            ? io.out
            : (text: string) => {
                appendOutputFile(out, text, "--out");
              };
        if (out !== undefined) writeOutputFile(out, "", "--out", { flag: "wx" });
        let batch = "";
        let otlp: ExportLine[] = [];
        const flushOtlp = () => {
          if (otlp.length > 0) batch += `${otlpRequest(otlp, Date.now())}\n`;
          otlp = [];
        };
        for await (const line of store.exportEntries({ checkpoints, ...defined({ since: opts.since, until: opts.until, verifierKey: key }) })) {
          if (opts.format === "otlp") {
            otlp.push(line);
            if (otlp.length >= OTLP_BATCH) flushOtlp();
          } else batch += `${JSON.stringify(line)}\n`;
          if (batch.length > 1 << 20) {
            write(batch);
            batch = "";
          }
        }
        flushOtlp();
        write(batch);
      });
    });

  audit
    .command("verify-export")
    .description("check an export written by audit export with the log's public key alone: every entry proved at its place, no gap, repeat, reordering or truncation; exit code 1 when it does not hold")
    .argument("<export-file>", "the export, as audit export wrote it")
    .requiredOption("--public-key <key|file>", "the log's verifier key, or a file holding it", verifierKey)
    .action((file: string, opts: { publicKey: string }) => {
      const text = readText(file, "export-file").split("\n");
      const verdict = verifyExport(isOtlpLine(text[0] ?? "") ? linesFromOtlp(text) : text, opts.publicKey);
      if (!verdict.ok) {
        io.out(`NOT VERIFIED: ${verdict.reason}\n`);
        io.setExitCode(1);
        return;
      }
      const v = verdict.value;
      io.out(`ok: entries ${String(v.from)} to ${String(v.to)} (${String(v.entries)}) proved in the tree of ${String(v.checkpoint.size)} signed by ${v.checkpoint.origin}\n`);
      if (v.pruned !== undefined) io.out(`entries 1 to ${String(v.pruned.upTo)} were pruned by retention (older than ${new Date(v.pruned.before).toISOString()}, on ${new Date(v.pruned.at).toISOString()}), as a signed retention checkpoint records\n`);
    });

  audit
    .command("verify-proof")
    .description("check a proof written by audit prove with the log's public key alone, and print the event's entries; exit code 1 when it does not hold")
    .argument("<proof-file>", "the proof, as audit prove wrote it")
    .requiredOption("--public-key <key|file>", "the log's verifier key, or a file holding it", verifierKey)
    .action((file: string, opts: { publicKey: string }) => {
      let bundle: unknown;
      try {
        bundle = JSON.parse(readText(file, "proof-file"));
      } catch (e) {
        if (e instanceof InvalidInput) throw e;
        throw new InvalidInput(`${file} is not JSON; give the file audit prove wrote`);
      }
      const verdict = verifyProof(bundle, opts.publicKey);
      if (!verdict.ok) {
        io.out(`NOT PROVED: ${verdict.reason}\n`);
        io.setExitCode(1);
        return;
      }
      const { entries, checkpoint } = verdict.value;
      io.out(`ok: ${String(entries.length)} entr${entries.length === 1 ? "y" : "ies"} proved in the tree of ${String(checkpoint.size)} signed by ${checkpoint.origin}\n`);
      io.out(`${JSON.stringify(entries, null, 2)}\n`);
    });

  storeOptions(audit.command("prune"))
    .description("retention by age: delete the entries older than --older-than, sign the prune as a retention checkpoint, and keep what remains verifiable with the public key alone; intents whose outcome is not pruned with them, and the newest entry, are kept")
    .requiredOption("--older-than <age|date>", "an age (90d, 12h, 30m, 2w) or an ISO date or time (2025-01-15, 2025-01-15T09:00Z): entries that began before it go")
    .option("--key <file>", "the checkpoint signing key (as audit keygen wrote it; default with --config: the gateway's)")
    .option("--checkpoints <file>", "the log's checkpoint file (default: the gateway's with --config, else the one beside the SQLite log)")
    .option("--json", "print the report as JSON")
    .action(async (opts: StoreOptions & { olderThan: string; key?: string; checkpoints?: string; json?: boolean }) => {
      const before = retentionCutoff(opts.olderThan);
      let store: AuditStore;
      if (opts.config !== undefined) {
        if (opts.store !== undefined || opts.databaseUrl !== undefined || opts.schema !== undefined || opts.key !== undefined || opts.checkpoints !== undefined) {
          throw new InvalidInput("--config names the gateway's audit log and its checkpoint key; leave out --store, --database-url, --schema, --key and --checkpoints");
        }
        store = await openGatewayAuditLog(opts.config);
      } else {
        if (opts.key === undefined) throw new InvalidInput("give --key: the checkpoint signing key file (a prune is signed, so what remains can be verified), or --config for a gateway's log");
        const file = opts.store ?? DEFAULT_SQLITE_PATH;
        if (opts.databaseUrl === undefined && !existsSync(file)) throw new InvalidInput(`--store: there is no audit log at ${file}`);
        const checkpoints = { key: readText(opts.key, "--key").trim(), ...defined({ sink: opts.checkpoints }) };
        if (opts.databaseUrl !== undefined && opts.checkpoints === undefined) throw new InvalidInput("give --checkpoints: the Postgres log's checkpoint file");
        store = await (opts.databaseUrl === undefined
          ? openAuditStore({ kind: "sqlite", path: file, checkpoints })
          : openAuditStore({ kind: "postgres", url: opts.databaseUrl, schema: opts.schema ?? DEFAULT_POSTGRES_SCHEMA, checkpoints }));
      }
      try {
        const report = await store.prune({ before });
        io.out(opts.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatPruneReport(report));
      } finally {
        await store.close();
      }
    });

  audit
    .command("keygen")
    .description("make an Ed25519 key for signing the log's checkpoints; writes the signing key to --out (keep it away from the database) and prints the public key")
    .requiredOption("--name <origin>", "the log's name, such as example.com/agentcap-audit")
    .requiredOption("--out <file>", "where to write the signing key (created with mode 0600; never overwritten)")
    .action((opts: { name: string; out: string }) => {
      if (existsSync(opts.out)) throw new InvalidInput(`--out: ${opts.out} exists; agentcap never overwrites a signing key`);
      const pair = generateCheckpointKey(opts.name);
      writeOutputFile(opts.out, `${pair.signerKey}\n`, "--out", { mode: 0o600, flag: "wx" });
      io.out(`${pair.verifierKey}\n`);
    });

  storeOptions(audit.command("query"))
    .description("list the events matching every filter given, oldest first; as a table or as JSON lines")
    .option("--principal <id>", "events under roots minted for this principal")
    .option("--request <id>", "events under the root minted for this request id")
    .option("--descendants-of <capability-id>", "events made with this capability or any capability derived from it")
    .option("--capability-hash <hash>", "events made with exactly the capability of this content hash")
    .option("--tool <name>", "events of this tool")
    .addOption(new Option("--action <action>", "events of this action").choices(AUDIT_ACTIONS))
    .option("--resource-prefix <prefix>", "events whose path, URL (origin and path), db:<model> or program starts with this")
    .option("--denied", "denied events only")
    .option("--revoked", "revocations only: who revoked what (the resource is <kind>:<id>), why, and what it reached")
    .option("--allowed", "allowed events only")
    .option("--since <time>", "events that began at or after this time: ISO date or time, 24h, 7d, today, yesterday, or epoch ms", time)
    .option("--until <time>", "events that began before this time (same forms as --since)", time)
    .option("--tenant <id>", "events acting for this tenant")
    .option("--session <id>", "events under the caretaker link labelled with this session")
    .option("--task <id>", "events under the caretaker link labelled with this task")
    .option("--limit <n>", `events per page (at most ${MAX_LIMIT})`, integer, 100)
    .option("--after <seq>", "continue after this sequence number", integer)
    .option("--desc", "newest first")
    .option("--all", "every matching event, page after page, not just the first page")
    .option("--shadow-diff", "the allowed events a grant attached in shadow would have denied, grouped by tool and rule (reads every matching event)")
    .addOption(new Option("--format <format>", "table for people, jsonl for machines").choices(["table", "jsonl"]).default("table"))
    .action(async (opts: QueryOptions) => {
      const query = queryOf(opts);
      const log = await logOf(opts);
      if (opts.shadowDiff === true) {
        if (opts.denied === true) throw new InvalidInput("--shadow-diff lists allowed events a shadow grant would have denied; it cannot be combined with --denied");
        await withStore(log, async (store) => {
          const seen: AuditRecord[] = [];
          let after = query.after;
          for (;;) {
            const page = await store.query({ ...query, ...defined({ after }) });
            seen.push(...page.filter((r) => r.event.decision.allowed && r.event.decision.shadow !== undefined));
            const last = page.at(-1);
            if (last === undefined || page.length < opts.limit) break;
            after = last.seq;
          }
          const groups = shadowGroups(seen);
          io.out(opts.format === "jsonl" ? groups.map((g) => `${printable(JSON.stringify(g))}\n`).join("") : formatShadowGroups(groups));
        });
        return;
      }
      await withStore(log, async (store) => {
        const table: AuditRecord[] = [];
        let after = query.after;
        for (;;) {
          const page = await store.query({ ...query, ...defined({ after }) });
          // JSON lines stream page by page; a table needs every row to align its columns.
          if (opts.format === "jsonl") io.out(formatJsonLines(page));
          else table.push(...page);
          const last = page.at(-1);
          if (opts.all !== true || last === undefined || page.length < opts.limit) break;
          after = last.seq;
        }
        if (opts.format === "table") {
          io.out(formatTable(table));
          // A person reading the table learns that older entries are gone on purpose, not that the log starts there.
          const pruned = await store.retention();
          if (pruned !== null) io.out(prunedNote(pruned));
        }
      });
    });

  return audit;
}
