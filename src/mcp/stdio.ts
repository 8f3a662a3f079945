/**
 * The gateway over stdio: one session, bound to the capability of the token
 * given at start (a flag or AGENTCAP_TOKEN). The token is checked before the
 * transport starts, so a bad one ends the process with a clear error instead
 * of a session that refuses everything.
 */
import { randomUUID } from "node:crypto";
import { expiresAt, systemClock } from "../kernel/index.js";
import { caretaker } from "../kernel/internal.js";
import { callLimiter } from "./call-limit.js";
import type { Gateway } from "./gateway.js";
import { sessionServer } from "./session.js";
import { StdioServerTransport } from "./sdk.js";

/** setTimeout's limit: a later expiry is seen at the session's next request instead. */
const MAX_DELAY_MS = 2_147_483_647;

/**
 * Serves one session on stdin/stdout; resolves when the client closes it.
 * Throws InvalidToken, Revoked or Expired for a bad token. The session lasts
 * as long as the process: when its token is revoked or expires, it reaches
 * no tool any more, and its client is sent `notifications/tools/list_changed`.
 */
export async function serveStdio(gateway: Gateway, token: string): Promise<void> {
  const capability = caretaker(await gateway.authenticate(token, { fresh: true }), { session: randomUUID() }).capability;
  const { maxConcurrentCalls, maxQueuedCalls } = gateway.config.sessions;
  const session = sessionServer(gateway, capability, { limit: callLimiter(maxConcurrentCalls, maxQueuedCalls) });
  const unwatch = gateway.tokenStore.watchSession(capability, () => {
    session.recheck();
  });
  const end = expiresAt(capability);
  // A moment past the expiry, so the capability reads as expired when the tools are looked at.
  const delay = end === null ? null : Math.max(0, end - systemClock.now()) + 10;
  const expiry = delay === null || delay > MAX_DELAY_MS ? null : setTimeout(session.recheck, delay);
  expiry?.unref();
  const server = session.mcp;
  const closed = new Promise<void>((resolve) => {
    server.server.onclose = () => {
      resolve();
    };
    // The SDK's transport does not watch for end of input; a client that closes our stdin has ended the session.
    process.stdin.once("end", () => {
      resolve();
    });
  });
  try {
    await server.connect(new StdioServerTransport());
    await closed;
    await server.close();
  } finally {
    unwatch();
    if (expiry !== null) clearTimeout(expiry);
    session.dispose();
    gateway.endSession(capability);
  }
}
