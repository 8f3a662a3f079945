/**
 * `agentcap audit explore`: the audit explorer on 127.0.0.1 over a gateway's
 * stores, named by its configuration, whether the gateway runs or not. The
 * page asks for a token with an audit read grant; the URL never holds one.
 */
import { Command, InvalidArgumentError } from "commander";
import { loadGatewayConfig } from "../mcp/index.js";
import { openConfiguredExplorer } from "../mcp/internal.js";
import { listenExplorer } from "../web/index.js";
import { closeOnSignals } from "./serve-command.js";

/** What `audit explore` is started with. */
export interface ExploreOptions {
  readonly config: string;
  readonly host?: string;
  readonly port?: number;
}

/** A listening explorer: its page and how to stop it. */
export interface ExploreHandle {
  readonly url: string;
  close(): Promise<void>;
}

/** Opens the stores `options.config` names and serves the explorer over them. */
export async function startExplorer(options: ExploreOptions, log: (line: string) => void = (line) => process.stderr.write(`agentcap audit explore: ${line}\n`)): Promise<ExploreHandle> {
  const opened = await openConfiguredExplorer(await loadGatewayConfig(options.config), log);
  try {
    const http = await listenExplorer(opened.explorer, { host: options.host ?? "127.0.0.1", port: options.port ?? 0 }, log);
    return {
      url: http.url,
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
    .description("serve the audit explorer (timeline, delegation trees, integrity, revocation) on 127.0.0.1 over a gateway's audit log and token store")
    .requiredOption("--config <file>", "the gateway configuration naming the audit log, token store and keys")
    .option("--host <host>", "the address to listen on", "127.0.0.1")
    .option("--port <port>", "the port (0 picks a free one)", port, 4100)
    .action(async (opts: { config: string; host: string; port: number }) => {
      const handle = await startExplorer(opts);
      out(`agentcap audit explorer on ${handle.url}\nopen it and give it a token whose grant has audit: ["read"] (and revoke, to revoke from the page)\n`);
      closeOnSignals(() => handle.close());
    });
}
