/**
 * `agentcap audit explore`: the audit explorer on 127.0.0.1, over a
 * gateway's stores named by its configuration (whether the gateway runs or
 * not), or over any audit log: a SQLite file or a Postgres schema. The page
 * asks for a token with an audit read grant; the URL never holds one.
 */
import { readInputFile } from "./files.js";
import { Command, InvalidArgumentError } from "commander";
import { openAuditStore, type AuditStore } from "../audit/index.js";
import { DEFAULT_POSTGRES_SCHEMA, DEFAULT_SQLITE_PATH } from "../audit/internal.js";
import { InvalidInput } from "../kernel/index.js";
import { defined } from "../kernel/internal.js";
import { loadGatewayConfig } from "../mcp/index.js";
import { openConfiguredExplorer, tokenStoreExplorer } from "../mcp/internal.js";
import { createTokenMint, generateKeyPair, openPostgresTokenStore, openSqliteTokenStore, toToken, type PublicKeySet, type TokenStore } from "../token/index.js";
import { listenExplorer, type Explorer } from "../web/index.js";
import { closeOnSignals } from "./serve-command.js";

/** What `audit explore` is started with: a gateway configuration, or an audit log and who may read it. */
export interface ExploreOptions {
  /** A gateway's configuration: its audit log, token store and keys. Excludes the options below. */
  readonly config?: string;
  /** The SQLite audit log (default .agentcap/audit.db), opened read-only. */
  readonly store?: string;
  /** The Postgres audit log instead, at this connection string, in `schema`. */
  readonly databaseUrl?: string;
  readonly schema?: string;
  /** The log's checkpoint file (default: the one beside a SQLite log). */
  readonly checkpoints?: string;
  /**
   * A public key set file (`{ "<key id>": "ed25519/<hex>" }`): the page accepts
   * tokens signed with these keys and minted under the token store
   * (`tokenStore`, default .agentcap/tokens.db, or `tokenDatabaseUrl`).
   * Without it, the command makes a key for this run alone and mints one
   * audit-read token with it (`ExploreHandle.token`), which dies with the process.
   */
  readonly publicKeys?: string;
  readonly tokenStore?: string;
  readonly tokenDatabaseUrl?: string;
  /** The Postgres token store's schema (its default when unset). */
  readonly tokenSchema?: string;
  readonly host?: string;
  readonly port?: number;
}

/** A listening explorer: its page, the token made for this run (over a bare log without public keys), and how to stop it. */
export interface ExploreHandle {
  readonly url: string;
  readonly token: string | null;
  close(): Promise<void>;
}

interface Opened {
  readonly explorer: Explorer;
  readonly token: string | null;
  close(): Promise<void>;
}

function readPublicKeys(file: string): PublicKeySet {
  let data: unknown;
  try {
    data = JSON.parse(readInputFile(file, "--public-keys file"));
  } catch (e) {
    throw new InvalidInput(`--public-keys: cannot read ${file} as JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data) || !Object.values(data).every((v) => typeof v === "string")) {
    throw new InvalidInput(`--public-keys: ${file} must hold a public key set { "<key id>": "ed25519/<hex>" }, as agentcap token keygen prints`);
  }
  return data as PublicKeySet;
}

/**
 * The explorer over a bare audit log, read-only: it revokes nothing (use
 * `agentcap token revoke`, or explore through the gateway's configuration),
 * and shows revocations from the token store, or without one from the log.
 */
async function openLogExplorer(o: ExploreOptions, log: (line: string) => void): Promise<Opened> {
  const audit: AuditStore =
    o.databaseUrl === undefined
      ? await openAuditStore({ kind: "sqlite", path: o.store ?? DEFAULT_SQLITE_PATH, readOnly: true })
      : await openAuditStore({ kind: "postgres", url: o.databaseUrl, schema: o.schema ?? DEFAULT_POSTGRES_SCHEMA, readOnly: true });
  let store: TokenStore | null = null;
  try {
    const checkpointFile = o.checkpoints ?? (o.databaseUrl === undefined ? `${o.store ?? DEFAULT_SQLITE_PATH}.checkpoints` : undefined);
    let publicKeys: PublicKeySet;
    let token: string | null = null;
    if (o.publicKeys === undefined) {
      // A key and a store that live as long as this process: its one token reads the log and dies with it.
      const pair = generateKeyPair();
      store = openSqliteTokenStore(":memory:");
      const mint = createTokenMint({ issuer: "agentcap audit explore", signingKey: pair.privateKey, keyId: 1, store, policy: () => ({ audit: ["read"] }) });
      token = toToken(mint.issue({ id: "operator" }));
      publicKeys = { 1: pair.publicKey };
    } else {
      publicKeys = readPublicKeys(o.publicKeys);
      store = o.tokenDatabaseUrl === undefined ? openSqliteTokenStore(o.tokenStore ?? ".agentcap/tokens.db") : await openPostgresTokenStore({ connectionString: o.tokenDatabaseUrl, ...defined({ schema: o.tokenSchema }) });
    }
    const tokens = store;
    const explorer = tokenStoreExplorer({ audit, publicKeys, store: tokens, revoke: false, log, ...defined({ checkpointFile }) });
    return {
      explorer,
      token,
      close: async () => {
        explorer.close();
        await tokens.close();
        await audit.close();
      },
    };
  } catch (e) {
    await store?.close();
    await audit.close();
    throw e;
  }
}

async function open(o: ExploreOptions, log: (line: string) => void): Promise<Opened> {
  const logOptions = [o.store, o.databaseUrl, o.schema, o.checkpoints, o.publicKeys, o.tokenStore, o.tokenDatabaseUrl, o.tokenSchema].filter((v) => v !== undefined);
  if (o.config === undefined) return openLogExplorer(o, log);
  if (logOptions.length > 0) throw new InvalidInput("--config names the gateway's stores and keys: give it alone, or the audit log's options (--store or --database-url, --public-keys …) without it");
  const opened = await openConfiguredExplorer(await loadGatewayConfig(o.config), log);
  return { explorer: opened.explorer, token: null, close: () => opened.close() };
}

/** Opens the stores the options name and serves the explorer over them. */
export async function startExplorer(options: ExploreOptions, log: (line: string) => void = (line) => process.stderr.write(`agentcap audit explore: ${line}\n`)): Promise<ExploreHandle> {
  const opened = await open(options, log);
  try {
    const http = await listenExplorer(opened.explorer, { host: options.host ?? "127.0.0.1", port: options.port ?? 0 }, log);
    return {
      url: http.url,
      token: opened.token,
      close: async () => {
        await http.close();
        await opened.close();
      },
    };
  } catch (e) {
    await opened.close();
    throw e;
  }
}

function port(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new InvalidArgumentError("must be a port number from 0 to 65535");
  return Number(value);
}

/** Adds `explore` to the `audit` command. */
export function registerExploreCommand(audit: Command, out: (text: string) => void = (text) => process.stdout.write(text)): void {
  audit
    .command("explore")
    .description("serve the audit explorer (timeline, charts, delegation trees, integrity; revocation with a gateway's configuration) on 127.0.0.1 over a gateway's stores or any audit log")
    .option("--config <file>", "the gateway configuration naming the audit log, token store and keys")
    .option("--store <file>", "without --config: the SQLite audit log, opened read-only", DEFAULT_SQLITE_PATH)
    .option("--database-url <url>", "without --config: the Postgres audit log at this connection string instead")
    .option("--schema <name>", "the Postgres schema holding the log", DEFAULT_POSTGRES_SCHEMA)
    .option("--checkpoints <file>", "the log's checkpoint file (default: the one beside the SQLite log)")
    .option("--public-keys <file>", "accept tokens signed with this public key set (agentcap token keygen) and minted under the token store; without it, a token for this run is made and printed")
    .option("--token-store <file>", "the SQLite token store those tokens were minted under", ".agentcap/tokens.db")
    .option("--token-database-url <url>", "the Postgres token store instead")
    .option("--token-schema <name>", "the Postgres token store's schema")
    .option("--host <host>", "the address to listen on", "127.0.0.1")
    .option("--port <port>", "the port (0 picks a free one)", port, 4100)
    .action(async (opts: ExploreOptions & { store: string; schema: string; tokenStore: string; host: string; port: number }, cmd: Command) => {
      // Defaults of the log's options are the log's own; only options the user typed conflict with --config.
      const typed = (name: string) => cmd.getOptionValueSource(name) === "cli";
      const chosen: ExploreOptions =
        opts.config === undefined
          ? opts
          : { config: opts.config, host: opts.host, port: opts.port, ...Object.fromEntries(["store", "databaseUrl", "schema", "checkpoints", "publicKeys", "tokenStore", "tokenDatabaseUrl", "tokenSchema"].filter(typed).map((k) => [k, opts[k as keyof ExploreOptions]])) };
      const handle = await startExplorer(chosen);
      const token = handle.token === null ? 'give it a token whose grant has audit: ["read"] (and revoke, to revoke from the page)' : `sign in with this token, made for this run (it reads the log, and dies with this process):\n${handle.token}`;
      out(`agentcap audit explorer on ${handle.url}\n${token}\n`);
      closeOnSignals(() => handle.close());
    });
}
