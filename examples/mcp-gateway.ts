/**
 * The MCP gateway on the embedded default: `npm start`.
 *
 * Serves the example configuration (examples/mcp/agentcap.json) over
 * Streamable HTTP on 127.0.0.1: a workspace folder, a small SQLite database
 * of customers and orders for two tenants (created on first start), audit
 * and revocations in SQLite. Prints the address, a development token for
 * the demo principal alice (tenant acme), and how to connect an MCP client.
 * Stops cleanly on SIGINT or SIGTERM.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { listenHttp, openGateway, parseGatewayConfig, type Gateway } from "agentcap/mcp";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The example's configuration file. */
export const EXAMPLE_CONFIG = path.join(here, "mcp", "agentcap.json");

/** Creates the example shop database at `file` unless it exists: customers and orders of tenants acme and globex. */
export function createExampleDatabase(file: string): void {
  if (existsSync(file)) return;
  mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  try {
    db.exec(`
      CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL);
      CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, customer_id INTEGER NOT NULL REFERENCES customers(id), total REAL NOT NULL, status TEXT NOT NULL);
      INSERT INTO customers VALUES
        (1, 'acme', 'Ada Lovelace', 'ada@acme.example'),
        (2, 'acme', 'Charles Babbage', 'charles@acme.example'),
        (3, 'globex', 'Grace Hopper', 'grace@globex.example'),
        (4, 'globex', 'Alan Turing', 'alan@globex.example');
      INSERT INTO orders VALUES
        (101, 'acme', 1, 120.5, 'shipped'),
        (102, 'acme', 1, 35.0, 'open'),
        (103, 'acme', 2, 990.0, 'open'),
        (201, 'globex', 3, 42.0, 'shipped'),
        (202, 'globex', 4, 7.25, 'refunded');
    `);
  } finally {
    db.close();
  }
}

/** Options of the example: where its state lives (default .agentcap/example in the repository) and the port. */
export interface ExampleOptions {
  readonly stateDir?: string;
  readonly port?: number;
}

/** The running example: its endpoint, alice's development token, and how to stop it. */
export interface ExampleHandle {
  readonly url: string;
  readonly gateway: Gateway;
  readonly devToken: string;
  close(): Promise<void>;
}

/** Starts the example gateway with a development token for alice. */
export async function startExample(options: ExampleOptions = {}): Promise<ExampleHandle> {
  const raw = JSON.parse(readFileSync(EXAMPLE_CONFIG, "utf8")) as Record<string, Record<string, unknown>>;
  const state = options.stateDir;
  // The file keeps its state under .agentcap/example; tests move it to a folder of their own.
  const moved =
    state === undefined
      ? raw
      : {
          ...raw,
          keys: { ...raw.keys, file: path.join(state, "keys.json") },
          tokenStore: { kind: "sqlite", path: path.join(state, "tokens.db") },
          audit: { kind: "sqlite", path: path.join(state, "audit.db"), checkpoints: { keyFile: path.join(state, "audit-checkpoint.key"), createKeyIfMissing: true } },
          tools: { ...raw.tools, database: { ...(raw.tools?.database as object), sqlite: path.join(state, "shop.db") } },
        };
  const config = parseGatewayConfig(moved, path.dirname(EXAMPLE_CONFIG));
  if (config.tools.database !== undefined) createExampleDatabase(config.tools.database.sqlite);
  const gateway = await openGateway(config);
  try {
    const http = await listenHttp(gateway, { host: config.listen.host, port: options.port ?? config.listen.port });
    const close = async () => {
      await http.close();
      await gateway.close();
    };
    return { url: http.url, gateway, devToken: gateway.issueToken("alice"), close };
  } catch (e) {
    await gateway.close();
    throw e;
  }
}

function instructions(url: string, token: string): string {
  return [
    `agentcap gateway (example configuration ${path.relative(process.cwd(), EXAMPLE_CONFIG)})`,
    ``,
    `  MCP endpoint (Streamable HTTP): ${url}`,
    ``,
    `Development token for alice (tenant acme; roles support, note-taker):`,
    ``,
    token,
    ``,
    `Connect an MCP client with the header  Authorization: Bearer <token>`,
    `  Claude Code:      claude mcp add --transport http agentcap ${url} --header "Authorization: Bearer <token>"`,
    `  MCP Inspector:    npx @modelcontextprotocol/inspector  (transport Streamable HTTP, URL above, bearer token above)`,
    `  any mcp.json:     { "mcpServers": { "agentcap": { "type": "http", "url": "${url}", "headers": { "Authorization": "Bearer <token>" } } } }`,
    ``,
    `alice sees read_file, list_files, db_query (acme's rows only) and write_file (workspace/notes only).`,
    `Mint other tokens with: npm run agentcap -- token mint --help. Audit log: npm run agentcap -- audit query --help;`,
    `its signed checkpoints are written beside it (audit verify --checkpoints <file> --public-key <key>, audit prove <event>).`,
    `Press Ctrl-C to stop.`,
  ].join("\n");
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const handle = await startExample();
  process.stdout.write(`${instructions(handle.url, handle.devToken)}\n`);
  const stop = () => {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    void handle.close().then(() => process.stdout.write("agentcap gateway stopped\n"));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
