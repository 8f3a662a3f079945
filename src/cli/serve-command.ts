/**
 * `agentcap serve`: the MCP gateway from a configuration file, over
 * Streamable HTTP (default) or stdio. Over stdio, stdout belongs to the
 * protocol, so everything the command says goes to stderr.
 */
import { Command, InvalidArgumentError } from "commander";
import { InvalidInput } from "../kernel/index.js";
import { listenHttp, loadGatewayConfig, openGateway, serveStdio, type Gateway, type GatewayConfig, type HttpGateway } from "../mcp/index.js";
import { defined } from "../kernel/internal.js";
import { tokenArg } from "./token-command.js";

/** What `serve` is started with; the command line fills it in, and the example start script too. */
export interface ServeOptions {
  /** A configuration file, or a configuration already validated. */
  readonly config: string | GatewayConfig;
  readonly host?: string;
  readonly port?: number;
  /** Mint and print a development token for this configured principal. */
  readonly devToken?: string;
}

/** A started HTTP gateway: its endpoint, the development token if one was asked for, and how to stop it. */
export interface ServeHandle {
  readonly url: string;
  readonly gateway: Gateway;
  readonly devToken: string | null;
  close(): Promise<void>;
}

/** Opens the gateway of `options.config` and serves it over HTTP. Throws InvalidInput for a bad configuration. */
export async function startHttpGateway(options: ServeOptions): Promise<ServeHandle> {
  const config = typeof options.config === "string" ? await loadGatewayConfig(options.config) : options.config;
  const gateway = await openGateway(config);
  let http: HttpGateway;
  try {
    const devToken = options.devToken === undefined ? null : gateway.issueToken(options.devToken);
    http = await listenHttp(gateway, { host: options.host ?? config.listen.host, port: options.port ?? config.listen.port });
    return {
      url: http.url,
      gateway,
      devToken,
      close: async () => {
        await http.close();
        await gateway.close();
      },
    };
  } catch (e) {
    await gateway.close();
    throw e;
  }
}

/** Closes `close` on the first SIGINT or SIGTERM, then lets the process end on its own. */
export function closeOnSignals(close: () => Promise<void>): void {
  const stop = () => {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    close().catch((e: unknown) => {
      process.stderr.write(`agentcap serve: error while stopping: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    });
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

function port(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new InvalidArgumentError("must be a port number from 0 to 65535");
  return Number(value);
}

/** Adds `serve` to the program. */
export function registerServeCommand(program: Command): void {
  program
    .command("serve")
    .description("serve confined tools and guarded upstream MCP servers to MCP clients, each session bound to a capability token")
    .requiredOption("--config <file>", "gateway configuration (JSON, or a .ts module whose default export is the configuration)")
    .option("--stdio", "serve one session on stdin/stdout instead of HTTP")
    .option("--token <token>", "over stdio: the session's capability token, or @file (default: the AGENTCAP_TOKEN environment variable)")
    .option("--host <host>", "over HTTP: the address to listen on (default from the configuration, else 127.0.0.1)")
    .option("--port <port>", "over HTTP: the port (0 picks a free one)", port)
    .option("--dev-token <principal>", "over HTTP: mint and print a development token for this configured principal")
    .action(async (opts: { config: string; stdio?: boolean; token?: string; host?: string; port?: number; devToken?: string }) => {
      if (opts.stdio === true) {
        const token = opts.token === undefined ? process.env.AGENTCAP_TOKEN : tokenArg(opts.token);
        if (token === undefined || token.trim() === "") throw new InvalidInput("serve --stdio needs the session's token: pass --token or set AGENTCAP_TOKEN");
        const gateway = await openGateway(await loadGatewayConfig(opts.config));
        try {
          await serveStdio(gateway, token.trim());
        } finally {
          await gateway.close();
        }
        return;
      }
      const handle = await startHttpGateway({
        config: opts.config,
        ...defined({ host: opts.host, port: opts.port, devToken: opts.devToken }),
      });
      process.stdout.write(`agentcap gateway listening on ${handle.url}\n`);
      if (handle.devToken !== null) process.stdout.write(`development token for ${opts.devToken ?? ""}:\n${handle.devToken}\n`);
      closeOnSignals(() => handle.close());
    });
}
