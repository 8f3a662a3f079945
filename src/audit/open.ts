import { z } from "zod";
import { InvalidInput } from "../kernel/index.js";
import { defined, describeIssues } from "../kernel/internal.js";
import { resolve } from "node:path";
import { fileCheckpointSink, parseSignerKey, type CheckpointSink } from "./checkpoint.js";
import { compileRedaction, type RedactionPolicy } from "./redaction.js";
import type { PostgresBackendOptions } from "./postgres-store.js";
import { DEFAULT_SQLITE_PATH, openSqliteBackend, type SqliteBackendOptions } from "./sqlite-store.js";
import type { AuditStream } from "./otlp-stream.js";
import { createAuditStore, type AuditStore, type CommonStoreOptions, type StoreCheckpoints } from "./store.js";

/** Signed checkpoints of the log's head, written outside the database as the log grows. */
export interface CheckpointOptions {
  /**
   * The Ed25519 signing key, `PRIVATE+KEY+<name>+<key id>+<base64 key>` as
   * `agentcap audit keygen` writes it. Keep it away from the database (its
   * own file, a secret store): whoever holds it can sign a rewritten history.
   */
  readonly key: string;
  /** The checkpoints' origin line, naming the log (default: the key's name). */
  readonly origin?: string;
  /** Where checkpoints go: a file path, or a sink of your own. Default for a SQLite file: the log's path with `.checkpoints` appended; required otherwise. */
  readonly sink?: string | CheckpointSink;
  /** Write one after this many new entries (default 1000). */
  readonly everyEntries?: number;
  /** Write one this many milliseconds after the first entry not yet covered (default 10,000). */
  readonly everyMs?: number;
}

interface Shared extends CommonStoreOptions {
  /** Which request fields and lineage grant values reach the log; see RedactionPolicy for the defaults. */
  readonly redaction?: RedactionPolicy;
  /** Sign checkpoints of the log's head with this key (see CheckpointOptions). Without it, verify can check the log only against itself. */
  readonly checkpoints?: CheckpointOptions;
}

/** Where the log lives: an embedded SQLite file (the default), or a Postgres schema shared by several processes. */
export type AuditStoreOptions = (Shared & SqliteBackendOptions & { readonly kind: "sqlite" }) | (Shared & PostgresBackendOptions & { readonly kind: "postgres" });

const shared = {
  redaction: z.unknown().optional(),
  checkpoints: z
    .strictObject({
      key: z.string().min(1),
      origin: z.string().regex(/^[^\n]+$/, "must be one line").optional(),
      sink: z.union([z.string().min(1), z.custom<CheckpointSink>((v) => typeof v === "object" && v !== null && typeof (v as CheckpointSink).append === "function" && typeof (v as CheckpointSink).read === "function", "must be a file path or a sink with append and read")]).optional(),
      everyEntries: z.number().int().min(1).optional(),
      everyMs: z.number().int().min(10).max(2_147_483_647).optional(),
    })
    .optional(),
  maxBatch: z.number().int().min(1).max(10_000).optional(),
  stream: z.custom<AuditStream>((v) => typeof v === "object" && v !== null && typeof (v as AuditStream).push === "function", "must be a stream with push, such as otlpLogStream(...)").optional(),
  readOnly: z.boolean().optional(),
};

const optionsSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("sqlite"),
    path: z.string().min(1).optional(),
    synchronous: z.enum(["full", "normal"]).optional(),
    busyTimeoutMs: z.number().int().nonnegative().optional(),
    ...shared,
  }),
  z.strictObject({
    kind: z.literal("postgres"),
    url: z.string().min(1, "must be a connection string such as postgres://user@host:5432/db"),
    schema: z.string().optional(),
    poolSize: z.number().int().min(1).max(1000).optional(),
    synchronousCommit: z.enum(["on", "off"]).optional(),
    ...shared,
  }),
]);

/**
 * Opens an audit log and returns it as an AuditSink with `query`, `verify`,
 * `prove` and `close`: `{ kind: "sqlite", path }` (default
 * `.agentcap/audit.db`) or `{ kind: "postgres", url, schema }`, with
 * `checkpoints: { key }` to sign its head into checkpoints kept outside the
 * database. Throws InvalidInput for bad options and AuditFailure when the
 * store cannot be opened.
 */
export async function openAuditStore(options: AuditStoreOptions = { kind: "sqlite" }): Promise<AuditStore> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw new InvalidInput(describeIssues("audit store options", parsed.error));
  const { redaction, maxBatch, checkpoints, stream, ...rest } = options;
  const redact = compileRedaction(redaction);
  const common = defined({ maxBatch, stream, checkpoints: checkpoints === undefined ? undefined : storeCheckpoints(checkpoints, rest) });
  if (rest.kind === "sqlite") return createAuditStore(openSqliteBackend(rest), redact, common);
  // Loaded only when used, so an embedded SQLite log never loads the Postgres driver.
  const { openPostgresBackend } = await import("./postgres-store.js");
  return createAuditStore(await openPostgresBackend(rest), redact, common);
}

function storeCheckpoints(options: CheckpointOptions, where: { readonly kind: string; readonly path?: string }): StoreCheckpoints {
  const signer = parseSignerKey(options.key);
  let sink = options.sink;
  if (sink === undefined) {
    if (where.kind !== "sqlite" || where.path === ":memory:") throw new InvalidInput("checkpoints.sink: name a file (or give a sink) for the checkpoints of this log; only a SQLite file has a default beside it");
    sink = `${resolve(where.path ?? DEFAULT_SQLITE_PATH)}.checkpoints`;
  }
  return {
    signer,
    origin: options.origin ?? signer.name,
    sink: typeof sink === "string" ? fileCheckpointSink(resolve(sink)) : sink,
    schedule: { everyEntries: options.everyEntries ?? 1000, everyMs: options.everyMs ?? 10_000 },
  };
}
