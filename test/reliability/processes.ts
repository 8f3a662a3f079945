import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

/*
 * Gateways in processes of their own, for the fault tests: started from
 * source with `agentcap serve`, read from their standard output, stopped
 * gently or killed with SIGKILL.
 */

const child = fileURLToPath(new URL("./serve-child.ts", import.meta.url));

/** A gateway process started with `agentcap serve`. */
export interface GatewayProcess {
  readonly process: ChildProcess;
  /** Its MCP endpoint. */
  readonly url: string;
  /** The development token it printed for the principal asked for. */
  readonly token: string;
  /** What it wrote to standard error so far. */
  stderr(): string;
  /** Resolves with the exit code (null) and signal once it has exited. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>;
}

/** Starts `agentcap serve --config <configFile> --port 0 --dev-token <principal>` and resolves once it listens; rejects if it exits first. */
export function startGateway(configFile: string, principal: string, env: NodeJS.ProcessEnv = process.env): Promise<GatewayProcess> {
  const proc = spawn(process.execPath, ["--import", "tsx", child, "serve", "--config", configFile, "--port", "0", "--dev-token", principal], {
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  let errors = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (chunk: string) => (errors += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once("exit", (code, signal) => { resolve({ code, signal }); });
  });
  return new Promise((resolve, reject) => {
    let url = "";
    let tokenNext = false;
    void exited.then(({ code, signal }) => { reject(new Error(`agentcap serve exited (${String(code ?? signal)}) before listening:\n${errors}`)); });
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const m = /^agentcap gateway listening on (\S+)$/.exec(line);
      if (m !== null) url = m[1] as string;
      else if (line.startsWith("development token for ")) tokenNext = true;
      else if (tokenNext && line.trim() !== "") {
        tokenNext = false;
        resolve({ process: proc, url, token: line.trim(), stderr: () => errors, exited });
      }
    });
  });
}

/** Sends SIGKILL: the process gets no chance to flush, close or write anything. */
export async function killHard(g: GatewayProcess): Promise<void> {
  g.process.kill("SIGKILL");
  const { signal } = await g.exited;
  if (signal !== "SIGKILL") throw new Error(`the gateway ended by ${String(signal)}, not SIGKILL`);
}

/** Sends SIGTERM, which makes `serve` close its sessions and stores, and waits for the exit. */
export async function stopGently(g: GatewayProcess): Promise<void> {
  g.process.kill("SIGTERM");
  await g.exited;
}

/** Waits until `condition` holds, checking every `everyMs`; throws naming `what` after `timeoutMs`. */
export async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 15_000, everyMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
