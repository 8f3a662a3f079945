import type { Server } from "node:http";
import { InvalidInput } from "../kernel/index.js";

/** Where a server listens; `backlog` is the queue of connections not yet accepted (the system's default when absent). */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  readonly backlog?: number;
}

/**
 * Starts `server` listening on `listen` and resolves once it does. The
 * refusals a person starting a server meets (the port is in use, a port
 * they may not open, an address this machine does not have) reject as
 * InvalidInput in one line that says what to do; `what` names the server
 * in it ("gateway", "explorer").
 */
export function listenOn(server: Server, listen: ListenAddress, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      const where = `cannot listen on ${listen.host}:${String(listen.port)}`;
      if (e.code === "EADDRINUSE") reject(new InvalidInput(`${where}: the port is in use (another ${what}?); choose another port`, { cause: e }));
      else if (e.code === "EACCES") reject(new InvalidInput(`${where}: permission denied`, { cause: e }));
      else if (e.code === "EADDRNOTAVAIL") reject(new InvalidInput(`${where}: no such address on this machine`, { cause: e }));
      else reject(e);
    });
    server.listen({ port: listen.port, host: listen.host, ...(listen.backlog === undefined ? {} : { backlog: listen.backlog }) }, () => {
      resolve();
    });
  });
}
