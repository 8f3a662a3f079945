/**
 * The MCP gateway on the embedded default: `npm start`.
 *
 * Serves the example configuration (examples/mcp/agentcap.json) over
 * Streamable HTTP on 127.0.0.1: a workspace folder, a small SQLite database
 * of customers and orders for two tenants (created on first start from
 * examples/mcp/shop.sql), audit and revocations in SQLite. Prints the
 * address, a development token for the demo principal alice (tenant acme,
 * also written to .agentcap/example/alice.token), the gateway's public keys
 * (written to .agentcap/example/public-keys.json, for the token commands'
 * --public-keys), and how to connect an MCP client. `npm start -- --port 4000` or `PORT=4000 npm start` picks the
 * port. Stops cleanly on SIGINT or SIGTERM.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { AgentcapError, InvalidInput } from "agentcap";
import { listenHttp, openGateway, parseGatewayConfig, type Gateway } from "agentcap/mcp";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The example's configuration file. */
export const EXAMPLE_CONFIG = path.join(here, "mcp", "agentcap.json");

/** Where the example keeps its state by default: keys, stores, alice's token and the public keys. */
const STATE_DIR = path.join(here, "..", ".agentcap", "example");

/** Options of the example: where its state lives (default .agentcap/example in the repository) and the port. */
export interface ExampleOptions {
  readonly stateDir?: string;
  readonly port?: number;
}

/** The running example: its endpoint, alice's development token, the files it wrote, and how to stop it. */
export interface ExampleHandle {
  readonly url: string;
  readonly gateway: Gateway;
  readonly devToken: string;
  /** alice's token, for recipes that read it (`--token @file`). */
  readonly tokenFile: string;
  /** The gateway's public key set, for the token commands' `--public-keys`. */
  readonly publicKeysFile: string;
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
  const gateway = await openGateway(config);
  try {
    const http = await listenHttp(gateway, { host: config.listen.host, port: options.port ?? config.listen.port });
    const close = async () => {
      await http.close();
      await gateway.close();
    };
    const dir = state ?? STATE_DIR;
    const devToken = gateway.issueToken("alice");
    const tokenFile = path.join(dir, "alice.token");
    const publicKeysFile = path.join(dir, "public-keys.json");
    mkdirSync(dir, { recursive: true });
    writeFileSync(tokenFile, `${devToken}\n`, { mode: 0o600 });
    writeFileSync(publicKeysFile, `${JSON.stringify(gateway.publicKeys, null, 2)}\n`);
    return { url: http.url, gateway, devToken, tokenFile, publicKeysFile, close };
  } catch (e) {
    await gateway.close();
    throw e;
  }
}

function instructions(handle: ExampleHandle): string {
  const { url, devToken: token } = handle;
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
    `The token is also in ${path.relative(process.cwd(), handle.tokenFile)} (for --token @file), the gateway's public keys in`,
    `${path.relative(process.cwd(), handle.publicKeysFile)} (for --public-keys). The token, revoke and audit commands act on this gateway's stores`,
    `with --config ${path.relative(process.cwd(), EXAMPLE_CONFIG)}: npm run agentcap -- token mint --help. Audit log: npm run agentcap -- audit query --help;`,
    `its signed checkpoints are written beside it (audit verify --checkpoints <file> --public-key <key>, audit prove <event>).`,
    `Press Ctrl-C to stop.`,
  ].join("\n");
}

/** The port `npm start` listens on: `--port N`, else the PORT environment variable, else the configuration's. */
export function examplePort(args: readonly string[], env: NodeJS.ProcessEnv): number | undefined {
  let given: string | undefined;
  try {
    given = parseArgs({ args: [...args], options: { port: { type: "string" } }, strict: true }).values.port ?? env.PORT;
  } catch (e) {
    throw new InvalidInput(`${e instanceof Error ? e.message : String(e)}; the one option is --port N (npm start -- --port 4000)`);
  }
  if (given === undefined || given === "") return undefined;
  if (!/^\d{1,5}$/.test(given) || Number(given) > 65535) throw new InvalidInput(`the port must be a number from 0 to 65535, not ${JSON.stringify(given)}`);
  return Number(given);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let handle: ExampleHandle;
  try {
    const port = examplePort(process.argv.slice(2), process.env);
    handle = await startExample(port === undefined ? {} : { port });
  } catch (e) {
    // One line a person can act on (a busy port, a bad option), not a stack trace.
    if (!(e instanceof AgentcapError)) throw e;
    process.stderr.write(`npm start: ${e.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${instructions(handle)}\n`);
  const stop = () => {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    void handle.close().then(() => process.stdout.write("agentcap gateway stopped\n"));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
