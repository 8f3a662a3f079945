import { z } from "zod";
import { InvalidInput } from "../kernel/index.js";
import { defined, describeIssues } from "../kernel/internal.js";
import { compileRedaction, type RedactionPolicy } from "./redaction.js";
import type { PostgresBackendOptions } from "./postgres-store.js";
import { openSqliteBackend, type SqliteBackendOptions } from "./sqlite-store.js";
import { createAuditStore, type AuditStore, type CommonStoreOptions } from "./store.js";

interface Shared extends CommonStoreOptions {
  /** Which request fields reach the log; see RedactionPolicy for the defaults. */
  readonly redaction?: RedactionPolicy;
}

/** Where the log lives: an embedded SQLite file (the default), or a Postgres schema shared by several processes. */
export type AuditStoreOptions = (Shared & SqliteBackendOptions & { readonly kind: "sqlite" }) | (Shared & PostgresBackendOptions & { readonly kind: "postgres" });

const shared = {
  redaction: z.unknown().optional(),
  maxBatch: z.number().int().min(1).max(10_000).optional(),
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
    ...shared,
  }),
]);

/**
 * Opens an audit log and returns it as an AuditSink with `query`, `verify`
 * and `close`: `{ kind: "sqlite", path }` (default `.agentcap/audit.db`) or
 * `{ kind: "postgres", url, schema }`. Throws InvalidInput for bad options and
 * AuditFailure when the store cannot be opened.
 */
export async function openAuditStore(options: AuditStoreOptions = { kind: "sqlite" }): Promise<AuditStore> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw new InvalidInput(describeIssues("audit store options", parsed.error));
  const { redaction, maxBatch, ...rest } = options;
  const redact = compileRedaction(redaction);
  const common = defined({ maxBatch });
  if (rest.kind === "sqlite") return createAuditStore(openSqliteBackend(rest), redact, common);
  // Loaded only when used, so an embedded SQLite log never loads the Postgres driver.
  const { openPostgresBackend } = await import("./postgres-store.js");
  return createAuditStore(await openPostgresBackend(rest), redact, common);
}
