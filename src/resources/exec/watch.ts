import { clockTime, Expired, expiresAt, revocationSignal, type Capability } from "../../kernel/index.js";

/*
 * Authority is checked once before a program starts, but a program runs for a
 * while: this watch turns a later revocation or expiry of the capability into
 * an abort, so the supervisor kills the program and the call rejects with
 * Revoked or Expired.
 */

// setTimeout cannot wait longer than this; longer waits are re-armed.
const MAX_TIMER_MS = 2 ** 31 - 1;

function expiredError<R>(cap: Capability<R>, at: number): Expired {
  const lineage = cap.lineage;
  const link = lineage.findIndex((l) => l.conditions.expiresAt === at);
  const linkId = lineage[link]?.id ?? cap.id;
  return new Expired(
    `capability ${cap.id} expired while its program ran: link ${link} (${linkId}) expired at ${new Date(at).toISOString()}`,
    { capabilityId: cap.id, link, linkId, rule: "expiresAt", because: `expired at ${new Date(at).toISOString()}` },
  );
}

/**
 * A signal that aborts, with a Revoked or Expired error as its reason, when
 * `cap` or an ancestor is revoked or when the earliest expiry of its chain
 * passes on its mint's clock. Expiry is noticed by a timer set for the time
 * remaining and re-checked against that clock when it fires, so an injected
 * clock that runs ahead is noticed no later than the remaining time in real
 * milliseconds. Call `dispose` when the run ends.
 */
export function watchAuthority<R>(cap: Capability<R>): { signal: AbortSignal; dispose: () => void } {
  const revocation = revocationSignal(cap);
  const controller = new AbortController();
  const deadline = expiresAt(cap);
  let timer: NodeJS.Timeout | undefined;

  const dispose = () => {
    revocation.dispose();
    revocation.signal.removeEventListener("abort", onRevoked);
    clearTimeout(timer);
  };
  const abort = (reason: unknown) => {
    dispose();
    controller.abort(reason);
  };
  function onRevoked() {
    abort(revocation.signal.reason);
  }
  const arm = (at: number) => {
    const remaining = at - clockTime(cap);
    if (remaining <= 0) {
      abort(expiredError(cap, at));
      return;
    }
    timer = setTimeout(() => { arm(at); }, Math.min(remaining, MAX_TIMER_MS));
  };

  if (revocation.signal.aborted) onRevoked();
  else {
    revocation.signal.addEventListener("abort", onRevoked);
    if (deadline !== null) arm(deadline);
  }
  return { signal: controller.signal, dispose };
}
