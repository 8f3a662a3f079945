/**
 * `agentcap audit verify | query`: the audit log from the command line. Both
 * open the log read-only: the SQLite file (default `.agentcap/audit.db`), or
 * with --database-url a Postgres schema.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { DEFAULT_POSTGRES_SCHEMA, DEFAULT_SQLITE_PATH, formatJsonLines, formatTable, formatVerifyReport, MAX_LIMIT } from "../audit/internal.js";
import { AUDIT_ACTIONS, openAuditStore, type AuditQuery, type AuditRecord, type AuditStore, type ChainHead } from "../audit/index.js";
import { InvalidInput, type Action } from "../kernel/index.js";
import { parseTimeArgument } from "./time-argument.js";
import { defined } from "../kernel/internal.js";

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
  readonly store: string;
  readonly databaseUrl?: string;
  readonly schema: string;
}

function openReadOnly(opts: StoreOptions): Promise<AuditStore> {
  return opts.databaseUrl === undefined
    ? openAuditStore({ kind: "sqlite", path: opts.store, readOnly: true })
    : openAuditStore({ kind: "postgres", url: opts.databaseUrl, schema: opts.schema, readOnly: true });
}

async function withStore(opts: StoreOptions, run: (store: AuditStore) => Promise<void>): Promise<void> {
  const store = await openReadOnly(opts);
  try {
    await run(store);
  } finally {
    await store.close();
  }
}

function storeOptions(cmd: Command): Command {
  return cmd
    .option("--store <file>", "the SQLite audit log", DEFAULT_SQLITE_PATH)
    .option("--database-url <url>", "use the Postgres audit log at this connection string instead")
    .option("--schema <name>", "the Postgres schema holding the log", DEFAULT_POSTGRES_SCHEMA);
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

function anchor(value: string): ChainHead {
  const m = /^(\d+):([0-9a-f]{64})$/.exec(value);
  if (m === null) throw new InvalidArgumentError("must be <seq>:<hash> as printed by a previous verify, such as 1042:9f86d08…");
  return { seq: Number(m[1]), hash: m[2] ?? "" };
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

/** Registers the `audit` command group (`verify`, `query`) on `program` and returns the group. */
export function registerAuditCommand(program: Command, io: AuditCommandIo = defaultIo): Command {
  const audit = program.command("audit").description("the capability-aware audit log: verify its hash chain, query it by lineage, principal, resource…");

  storeOptions(audit.command("verify"))
    .description("walk the whole log and report every edited, deleted, reordered or inserted event; exit code 1 when tampered")
    .option("--anchor <seq:hash>", "a head printed by an earlier verify: also catches events deleted from the end", anchor)
    .option("--max-problems <n>", "stop after this many problems", integer, 100)
    .option("--json", "print the report as JSON")
    .action(async (opts: StoreOptions & { anchor?: ChainHead; maxProblems: number; json?: boolean }) => {
      await withStore(opts, async (store) => {
        const report = await store.verify({ maxProblems: opts.maxProblems, ...defined({ anchor: opts.anchor }) });
        io.out(opts.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatVerifyReport(report));
        if (!report.ok) io.setExitCode(1);
      });
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
    .addOption(new Option("--format <format>", "table for people, jsonl for machines").choices(["table", "jsonl"]).default("table"))
    .action(async (opts: QueryOptions) => {
      const query = queryOf(opts);
      await withStore(opts, async (store) => {
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
        if (opts.format === "table") io.out(formatTable(table));
      });
    });

  return audit;
}
