/**
 * The tools a gateway serves of its own: the built-in confined tools its
 * configuration enables, and its tool modules. Handlers run sandboxed unless
 * the configuration opts out (`trusted: true`), which every event of those
 * tools records. Every resource records its accesses in the gateway's audit
 * store and accepts roots only from the gateway's mints.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import type Database from "better-sqlite3";
import { InvalidInput, type AuditSink, type CredentialSource } from "../kernel/index.js";
import { defined, requireOptional } from "../kernel/internal.js";
import { createExec } from "../resources/exec/index.js";
import { createFileSystem } from "../resources/fs/index.js";
import { createHttpClient, type Resolver } from "../resources/http/index.js";
import { createSqlDatabase, type SchemaSpec } from "../resources/sql/index.js";
import { loadBuiltinTools, loadToolModule, type BuiltinResources, type ToolModule } from "../sandbox/index.js";
import { actingMethods } from "../sandbox/internal.js";
import type { AnyTool } from "../tools/index.js";
import type { GatewayConfig } from "./config.js";

/**
 * Creates the database file `file` from the SQL file `seed` (how an example
 * or a development setup starts from nothing); InvalidInput without a seed.
 * A seed that fails leaves no database behind, so the next start tries again.
 */
function seedDatabase(Driver: typeof Database, file: string, seed: string | undefined): void {
  if (seed === undefined) throw new InvalidInput(`tools.database.sqlite: database file ${file} does not exist (tools.database.seed names an SQL file that creates it)`);
  let sql: string;
  try {
    sql = readFileSync(seed, "utf8");
  } catch (e) {
    throw new InvalidInput(`tools.database.seed: cannot read ${seed}: ${e instanceof Error ? e.message : String(e)}`);
  }
  mkdirSync(path.dirname(file), { recursive: true });
  const db = new Driver(file);
  try {
    db.exec(sql);
  } catch (e) {
    db.close();
    rmSync(file, { force: true });
    throw new InvalidInput(`tools.database.seed: ${seed} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  db.close();
}

/** The gateway's own tools, and how to stop their sandboxes and close their resources. */
export interface GatewayTools {
  readonly tools: readonly AnyTool[];
  close(): Promise<void>;
}

/** Where a gateway's resources record and whom they accept roots from. */
export interface GatewayToolOptions {
  readonly audit: AuditSink;
  /** The mints whose roots the resources accept (see `mints` of the resource factories). */
  readonly mints: readonly string[];
  readonly resolver?: Resolver | undefined;
  /** Each caller's own credentials, attached by the fetch tool's HTTP resource for each origin it sends to. */
  readonly credentials?: CredentialSource | undefined;
  /** The operator's log: a line when a tool sandbox is stopped, or refuses calls for having been stopped too often. */
  readonly log: (line: string) => void;
}

/** Opens the configured tools; whatever was opened before a failure is closed again. */
export async function openGatewayTools(config: GatewayConfig["tools"], options: GatewayToolOptions): Promise<GatewayTools> {
  const closers: (() => unknown)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    const resources = openResources(config, options, closers);
    const tools: AnyTool[] = [];
    const load = async (loading: Promise<ToolModule>) => {
      const loaded = await loading;
      closers.push(() => loaded.close());
      tools.push(...loaded.tools);
    };
    if (Object.keys(resources).length > 0) await load(loadBuiltinTools(resources, { ...defined({ trusted: config.trusted }), log: options.log }));
    const acting = actingMethods(resources);
    for (const m of config.modules ?? []) {
      const endowments = { ...m.data, ...Object.fromEntries((m.endow ?? []).map((name) => [name, acting[name]])) };
      const limits = defined({ timeoutMs: m.timeoutMs, memoryMb: m.memoryMb });
      await load(loadToolModule(m.path, m.trusted === true ? { trusted: true, endowments } : { endowments, log: options.log, ...defined({ allow: m.allow }), ...(Object.keys(limits).length > 0 ? { limits } : {}) }));
    }
    const names = tools.map((t) => t.name);
    const repeated = [...new Set(names.filter((n, i) => names.indexOf(n) !== i))];
    if (repeated.length > 0) {
      const which = repeated.length === 1 ? `tool ${repeated.join("")} is` : `tools ${repeated.join(", ")} are`;
      throw new InvalidInput(`tools.modules: ${which} defined twice (a module repeats a built-in tool's name or another module's)`);
    }
    return { tools, close };
  } catch (e) {
    await close();
    throw e;
  }
}

function openResources(config: GatewayConfig["tools"], { audit, mints, resolver, credentials }: GatewayToolOptions, closers: (() => unknown)[]): BuiltinResources {
  const confined = { audit, mints };
  const resources: { -readonly [K in keyof BuiltinResources]: BuiltinResources[K] } = {};
  if (config.files !== undefined) resources.files = createFileSystem({ baseDir: config.files.root, ...confined });
  if (config.http !== undefined) {
    const http = createHttpClient({ ...confined, ...defined({ timeoutMs: config.http.timeoutMs, resolver, credentials }) });
    closers.push(() => {
      http.close();
    });
    resources.http = http;
  }
  if (config.database !== undefined) {
    const Driver = requireOptional("better-sqlite3", "the gateway's SQLite database tools") as typeof Database;
    if (!existsSync(config.database.sqlite)) seedDatabase(Driver, config.database.sqlite, config.database.seed);
    const sqlite = new Driver(config.database.sqlite, { fileMustExist: true });
    closers.push(() => sqlite.close());
    const schema = config.database.schema as SchemaSpec;
    resources.database = { db: createSqlDatabase({ sqlite, schema, ...confined }), schema };
  }
  if (config.commands !== undefined) resources.exec = createExec({ ...confined, ...defined({ env: config.commands.env }) });
  return resources;
}
