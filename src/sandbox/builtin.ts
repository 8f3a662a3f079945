import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { InvalidInput, type Capability } from "../kernel/index.js";
import { describeIssues } from "../kernel/internal.js";
import type { Exec } from "../resources/exec/index.js";
import type { FileSystem } from "../resources/fs/index.js";
import type { HttpClient } from "../resources/http/index.js";
import type { SchemaSpec, SqlDatabase } from "../resources/sql/index.js";
import { commandTool, databaseTools, fetchTool, fileTools, type AnyTool, type ToolContext } from "../tools/index.js";
import { rehostTool } from "../tools/internal.js";
import { NO_SANDBOX, startSandbox, type ToolModule } from "./load.js";
import type { SandboxLimits } from "./module-sandbox.js";

/*
 * agentcap's built-in tools, with their handlers in a sandbox. What decides a
 * call's authority (input schema, needs, narrowing) is agentcap's own code
 * and runs here; the handlers, the code that acts, run in a worker locked
 * down with SES, holding only each call's capability and the methods of the
 * resources that act (read/write/list, request,
 * read/create/update/delete/aggregate, run): not `close`, not the resource objects themselves.
 */

/** The resources whose built-in tools to load: each one given enables its tools. */
export interface BuiltinResources {
  /** read_file, write_file, list_files. */
  readonly files?: FileSystem;
  /** fetch_url. */
  readonly http?: HttpClient;
  /** db_query, db_create, db_update, db_delete, db_aggregate, described from `schema` (the schema `db` was created with). */
  readonly database?: { readonly db: SqlDatabase; readonly schema: SchemaSpec };
  /** run_command. */
  readonly exec?: Exec;
}

/** Options of `loadBuiltinTools`. */
export interface LoadBuiltinToolsOptions {
  /** Time and memory limits of the handlers' sandbox (defaults: DEFAULT_SANDBOX_LIMITS). */
  readonly limits?: Partial<SandboxLimits>;
  /** The opt-out: run the handlers in this process. Every audit event of these tools records `toolCode: "trusted"`. */
  readonly trusted?: boolean;
  /** One line for the operator each time the handlers' sandbox is stopped, and when it starts refusing calls for having been stopped too often. */
  readonly log?: (line: string) => void;
}

const HANDLERS = fileURLToPath(new URL(`./builtin-handlers${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));

const limit = (max: number) => z.number().int().positive().max(max);
const optionsSchema = z.strictObject({
  limits: z.strictObject({ timeoutMs: limit(3_600_000), loadTimeoutMs: limit(3_600_000), memoryMb: limit(16_384).min(16) }).partial().optional(),
  trusted: z.boolean().optional(),
  log: z.custom<(line: string) => void>((v) => typeof v === "function", "must be a function").optional(),
});

/**
 * The built-in tools over `resources`, each audited like any tool (with
 * `toolCode` saying how its handler runs). Sandboxed by default: a handler
 * reaches only its call's capability and the acting methods of the given
 * resources, and a call past the time limit fails alone (SandboxTimeout)
 * while the others go on.
 * Throws InvalidInput for bad options or when no resource is given.
 */
export async function loadBuiltinTools(resources: BuiltinResources, options: LoadBuiltinToolsOptions = {}): Promise<ToolModule> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw new InvalidInput(describeIssues("options of loadBuiltinTools", parsed.error));
  const host = hostTools(resources);
  if (host.length === 0) throw new InvalidInput("loadBuiltinTools needs at least one resource: files, http, database or exec");
  if (parsed.data.trusted === true) return Object.freeze({ tools: Object.freeze(host.map((tool) => rehostTool(tool, "trusted"))), close: () => Promise.resolve(), health: () => NO_SANDBOX });
  const { sandbox } = await startSandbox({ path: HANDLERS }, actingMethods(resources), [], parsed.data.limits ?? {}, parsed.data.log);
  const tools = host.map((tool) =>
    rehostTool(tool, "sandboxed", (input: unknown, capability: Capability, context: ToolContext) => sandbox.run(tool.name, input, capability, context)),
  );
  return Object.freeze({ tools: Object.freeze(tools), close: () => sandbox.close(), health: () => sandbox.health() });
}

function hostTools({ files, http, database, exec }: BuiltinResources): AnyTool[] {
  const tools: AnyTool[] = [];
  if (files !== undefined) {
    const f = fileTools(files);
    tools.push(f.read, f.write, f.list);
  }
  if (http !== undefined) tools.push(fetchTool(http));
  if (database !== undefined) {
    const d = databaseTools(database.db, database.schema);
    tools.push(d.query, d.create, d.update, d.delete, d.aggregate);
  }
  if (exec !== undefined) tools.push(commandTool(exec));
  return tools;
}

/** What tool code is endowed with: the methods of each resource that act, bound to it here (and the file system's base directory, to name paths by); nothing that closes or configures one. */
export function actingMethods({ files, http, database, exec }: BuiltinResources): Record<string, object> {
  return {
    ...(files === undefined
      ? {}
      : { files: { baseDir: files.baseDir, read: files.read.bind(files), write: files.write.bind(files), list: files.list.bind(files) } }),
    ...(http === undefined ? {} : { http: { request: http.request.bind(http) } }),
    ...(database === undefined
      ? {}
      : {
          database: {
            read: database.db.read.bind(database.db),
            create: database.db.create.bind(database.db),
            update: database.db.update.bind(database.db),
            delete: database.db.delete.bind(database.db),
            aggregate: database.db.aggregate.bind(database.db),
          },
        }),
    ...(exec === undefined ? {} : { exec: { run: exec.run.bind(exec) } }),
  };
}
