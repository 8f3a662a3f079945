/*
 * The handlers of agentcap's built-in tools, as a tool module: loaded into a
 * sandbox by `loadBuiltinTools`, they reach files, HTTP, the database and
 * subprocesses only through the endowed resources, with the capability each
 * call is given. Names, descriptions, input schemas and needs stay on the
 * host (agentcap's own code, in the tools layer): the host validates input
 * and narrows the capability before a handler here runs, so these inputs are
 * already checked and these schemas only pass them on.
 */
import { z } from "zod";
import { defineTool, type ModuleCapability } from "agentcap/sandbox";

interface ReadWrite {
  read(capability: ModuleCapability, path: string, options: Tenant): Promise<Uint8Array>;
  write(capability: ModuleCapability, path: string, data: string, options: Tenant): Promise<void>;
  list(capability: ModuleCapability, path: string, options: Tenant): Promise<unknown>;
}

interface Requests {
  request(capability: ModuleCapability, url: string, options: Tenant & Record<string, unknown>): Promise<{ status: number; url: string; headers: Record<string, string>; body: Uint8Array }>;
}

interface Rows {
  read(capability: ModuleCapability, query: object): Promise<unknown>;
  create(capability: ModuleCapability, query: object): Promise<unknown>;
  update(capability: ModuleCapability, query: object): Promise<unknown>;
  delete(capability: ModuleCapability, query: object): Promise<unknown>;
  aggregate(capability: ModuleCapability, query: object): Promise<unknown>;
}

interface Runs {
  run(capability: ModuleCapability, argv: readonly string[], options: Tenant & Record<string, unknown>): Promise<unknown>;
}

interface Endowed {
  readonly files: ReadWrite;
  readonly http: Requests;
  readonly database: Rows;
  readonly exec: Runs;
}

interface Tenant {
  readonly tenant?: string;
}

const checked = z.looseObject({});
type Checked = Record<string, unknown>;
const noNeeds = () => [];
const on = (tenant: string | null): Tenant => (tenant === null ? {} : { tenant });
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
/** The optional fields of a checked input that are present, as the resources take them. */
const present = (input: Checked, keys: readonly string[]) => Object.fromEntries(keys.filter((k) => input[k] !== undefined).map((k) => [k, input[k]]));

function tool(name: string, handler: (input: Checked, capability: ModuleCapability, endowments: Endowed, tenant: Tenant) => Promise<unknown>) {
  return defineTool<typeof checked, unknown, Endowed>({ name, description: `The handler of the built-in ${name}.`, input: checked, needs: noNeeds }, (input, capability, context) =>
    handler(input, capability, context.endowments, on(context.tenant)),
  );
}

export const readFile = tool("read_file", async (i, cap, { files }, tenant) => ({ path: i.path, text: text(await files.read(cap, String(i.path), tenant)) }));

export const writeFile = tool("write_file", async (i, cap, { files }, tenant) => {
  const content = String(i.content);
  await files.write(cap, String(i.path), content, tenant);
  return { path: i.path, bytes: new TextEncoder().encode(content).length };
});

export const listFiles = tool("list_files", async (i, cap, { files }, tenant) => ({ path: i.path, entries: await files.list(cap, String(i.path), tenant) }));

export const fetchUrl = tool("fetch_url", async (i, cap, { http }, tenant) => {
  const res = await http.request(cap, String(i.url), { method: i.method, ...present(i, ["headers", "body"]), ...tenant });
  return { status: res.status, url: res.url, contentType: res.headers["content-type"] ?? null, body: text(res.body) };
});

const QUERY = ["where", "orderBy", "limit", "offset", "include"];

export const dbQuery = tool("db_query", (i, cap, { database }, tenant) => database.read(cap, { model: i.model, fields: i.fields, ...present(i, QUERY), ...tenant }));

export const dbCreate = tool("db_create", (i, cap, { database }, tenant) => database.create(cap, { model: i.model, values: i.values, ...present(i, ["returning", "reason"]), ...tenant }));

export const dbUpdate = tool("db_update", (i, cap, { database }, tenant) => database.update(cap, { model: i.model, set: i.set, ...present(i, ["where", "returning", "reason"]), ...tenant }));

export const dbAggregate = tool("db_aggregate", (i, cap, { database }, tenant) =>
  database.aggregate(cap, { model: i.model, aggregates: i.aggregates, ...present(i, ["where", "groupBy"]), ...tenant }),
);

export const dbDelete = tool("db_delete", (i, cap, { database }, tenant) => database.delete(cap, { model: i.model, ...present(i, ["where", "reason"]), ...tenant }));

export const runCommand = tool("run_command", (i, cap, { exec }, tenant) =>
  exec.run(cap, i.argv as string[], { cwd: i.cwd, ...present(i, ["env"]), ...(i.stdin === undefined ? {} : { input: i.stdin }), ...tenant }),
);
