import { randomUUID } from "node:crypto";
import { InvalidInput, SessionClosed, type Capability, type Mint, type MintRecord, type Principal } from "../kernel/index.js";
import { caretaker, defined } from "../kernel/internal.js";

/** One authenticated user's session: the root of every capability the runtime hands out for them. */
export interface Session {
  readonly id: string;
  /** Who the session is for, as the mint recorded it. */
  readonly principal: MintRecord;
  /** The user's root capability behind a forwarder labelled `{ session }`; revoked when the session closes. */
  readonly capability: Capability;
  /**
   * A fresh root for the same principal, minted now under the mint's
   * current policy (which may refuse: CapabilityDenied), behind a forwarder
   * labelled `{ session }` that closing the session revokes. Throws
   * SessionClosed once the session is closed.
   */
  remint(options?: { readonly requestId?: string }): Capability;
  /** Revokes the session's capability and every re-minted one, at once. Idempotent. */
  close(reason?: string): void;
  readonly closed: boolean;
}

/** How a session is opened for an already-authenticated principal. */
export interface OpenSessionOptions {
  readonly mint: Mint<unknown>;
  readonly principal: Principal;
  /** The session id (default: a random UUID); it labels every capability of the session. */
  readonly id?: string;
  /** The request the session's root is minted for (default: a random UUID). */
  readonly requestId?: string;
}

/** Opens a session by minting the principal's root capability. Throws CapabilityDenied when the mint's policy refuses. */
export function openSession(options: OpenSessionOptions): Session {
  const mint = options.mint;
  const id = sessionId(options.id);
  const root = mint.issue(options.principal, defined({ requestId: options.requestId }));
  return sessionFor(mint, id, root);
}

/** Opens a session for whoever `incoming` authenticates as, through the mint's authenticator. */
export async function authenticateSession<In>(options: {
  readonly mint: Mint<In>;
  readonly incoming: In;
  readonly id?: string;
  readonly requestId?: string;
}): Promise<Session> {
  const id = sessionId(options.id);
  const root = await options.mint.authenticate(options.incoming, defined({ requestId: options.requestId }));
  return sessionFor(options.mint, id, root);
}

function sessionId(id: unknown): string {
  if (id === undefined) return randomUUID();
  if (typeof id !== "string" || id.length === 0 || id.length > 256) throw new InvalidInput("session id must be a string of 1 to 256 characters");
  return id;
}

function sessionFor(mint: Mint<unknown>, id: string, root: Capability): Session {
  const principal = root.mint;
  const labels = { session: id };
  const main = caretaker(root, labels);
  const revokers: ((reason: string) => void)[] = [main.revoke];
  let closed = false;
  return Object.freeze({
    id,
    principal,
    capability: main.capability,
    remint: (options?: { readonly requestId?: string }) => {
      if (closed) throw new SessionClosed(`session ${id} is closed; it mints nothing more`);
      const fresh = mint.issue(
        { id: principal.principal, tenants: principal.tenants, roles: principal.roles },
        defined({ requestId: options?.requestId }),
      );
      const forwarder = caretaker(fresh, labels);
      revokers.push(forwarder.revoke);
      return forwarder.capability;
    },
    close: (reason = "the session was closed") => {
      closed = true;
      for (const revoke of revokers.splice(0)) revoke(reason);
    },
    get closed() {
      return closed;
    },
  });
}
