/**
 * The gateway over stdio: one session, bound to the capability of the token
 * given at start (a flag or AGENTCAP_TOKEN). The token is checked before the
 * transport starts, so a bad one ends the process with a clear error instead
 * of a session that refuses everything.
 */
import { randomUUID } from "node:crypto";
import { caretaker } from "../kernel/internal.js";
import { callLimiter } from "./call-limit.js";
import type { Gateway } from "./gateway.js";
import { sessionServer } from "./session.js";
import { StdioServerTransport } from "./sdk.js";

/** Serves one session on stdin/stdout; resolves when the client closes it. Throws InvalidToken, Revoked or Expired for a bad token. */
export async function serveStdio(gateway: Gateway, token: string): Promise<void> {
  const capability = await gateway.authenticate(token, { fresh: true });
  const { maxConcurrentCalls, maxQueuedCalls } = gateway.config.sessions;
  const server = sessionServer(gateway, caretaker(capability, { session: randomUUID() }).capability, { limit: callLimiter(maxConcurrentCalls, maxQueuedCalls) });
  const closed = new Promise<void>((resolve) => {
    server.server.onclose = () => {
      resolve();
    };
    // The SDK's transport does not watch for end of input; a client that closes our stdin has ended the session.
    process.stdin.once("end", () => {
      resolve();
    });
  });
  await server.connect(new StdioServerTransport());
  await closed;
  await server.close();
}
