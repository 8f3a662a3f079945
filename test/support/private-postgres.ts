import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

/*
 * A PostgreSQL server of a test's own, for tests that stop and start one:
 * the shared server on 5432 serves every other run and must never be
 * restarted. Made with the installed server binaries (initdb, pg_ctl) in a
 * temporary directory, listening on a port of its own on 127.0.0.1 and on a
 * Unix socket in that directory. The server refuses to run as root, so under
 * root every command runs as the `postgres` user, who then owns the
 * directory.
 */

const INSTALL = "/usr/lib/postgresql";

/** The newest installed server's bin directory, or null when there is none. */
function serverBinaries(): string | null {
  if (!existsSync(INSTALL)) return null;
  const versions = readdirSync(INSTALL)
    .filter((v) => existsSync(path.join(INSTALL, v, "bin", "pg_ctl")) && existsSync(path.join(INSTALL, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? null : path.join(INSTALL, versions[0], "bin");
}

const bin = serverBinaries();
const asRoot = process.getuid?.() === 0;

/** Why a private server cannot be made here, or null when it can. */
export const privatePostgresSkipReason: string | null =
  bin === null ? `no PostgreSQL server binaries under ${INSTALL}/*/bin (install postgresql to run the restart tests)` : null;

/** A private server: its URLs, and stop and start as a restart does them. */
export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres: what the code under test connects to. */
  readonly url: string;
  /** The same server through its Unix socket, which stays reachable while TCP is switched off. */
  readonly socketUrl: string;
  /**
   * Stops the server at once (`pg_ctl stop -m immediate`: connections end
   * without a goodbye, and the next start runs crash recovery).
   */
  stop(): void;
  /** Starts it again on the same port; with `tcp: false` it listens only on its Unix socket, so `url` is refused. */
  start(options?: { readonly tcp?: boolean }): void;
  /** Stops it and removes its directory. */
  destroy(): void;
}

/** A port nobody listens on now, on 127.0.0.1. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  if (address === null || typeof address === "string") throw new Error("could not find a free port");
  return address.port;
}

/** Makes, starts and returns a private server; throws with the server's own words if it cannot. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  if (bin === null) throw new Error(privatePostgresSkipReason ?? "no PostgreSQL server binaries");
  const dir = mkdtempSync(path.join(tmpdir(), "agentcap-pg-"));
  const run = (program: string, args: readonly string[]) => {
    const command = asRoot ? ["runuser", ["-u", "postgres", "--", path.join(bin, program), ...args]] as const : [path.join(bin, program), args] as const;
    try {
      execFileSync(command[0], command[1], { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000, cwd: dir });
    } catch (e) {
      const err = e as { stderr?: Buffer; stdout?: Buffer; message: string };
      throw new Error(`${program} ${args.join(" ")} failed: ${err.stderr?.toString() ?? ""}${err.stdout?.toString() ?? ""}${err.message}`, { cause: e });
    }
  };
  if (asRoot) {
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, id("-u"), id("-g"));
  }
  const data = path.join(dir, "data");
  run("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
  const port = await freePort();
  const start = (tcp: boolean) => {
    const settings = `-p ${port} -k ${dir} -c listen_addresses=${tcp ? "127.0.0.1" : "''"} -c shared_buffers=16MB -c max_connections=50`;
    run("pg_ctl", ["-D", data, "-l", path.join(dir, "server.log"), "-w", "-t", "60", "-o", settings, "start"]);
  };
  let running = false;
  const stop = () => {
    if (!running) return;
    run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "-t", "60", "stop"]);
    running = false;
  };
  start(true);
  running = true;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    socketUrl: `postgres://postgres@localhost:${port}/postgres?host=${encodeURIComponent(dir)}`,
    stop,
    start: (options = {}) => {
      start(options.tcp ?? true);
      running = true;
    },
    destroy: () => {
      try {
        stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
