/**
 * One revocation, the same for every store: validated, authorized by the
 * revoker's capability, committed durably, only then applied in this
 * process (counting what it reached), and recorded in the audit log.
 */
import { authorize, auditSubject, denialError, InvalidInput, systemClock, type AuditSink, type Capability } from "../kernel/index.js";
import { timeOrderedId } from "../kernel/internal.js";
import type { RevocationBook } from "./revocation-book.js";
import { checkedTarget, revocationExpiry, revocationReason, type RevocationEntry, type RevocationReport, type RevocationTarget, type RevokeOptions, type TargetKind } from "./store.js";

/** The request a revoker's capability must allow: `{ action: "revoke", target, id }`. */
export function revokeRequest(kind: TargetKind, id: string): { readonly action: "revoke"; readonly target: TargetKind; readonly id: string } {
  return { action: "revoke", target: kind, id };
}

/**
 * What a store does to record one revocation durably: returns once
 * committed, or a promise that resolves then. A store that commits
 * synchronously (SQLite) returns nothing, so the revocation holds in this
 * process before `revoke` returns to its caller, as a caretaker's would.
 */
export type CommitRevocation = (entry: RevocationEntry) => Promise<void> | undefined;

/** Reads the own options given to `revoke`, so a polluted prototype supplies nothing. */
function own<K extends keyof RevokeOptions>(options: RevokeOptions | undefined, key: K): RevokeOptions[K] | undefined {
  return options !== undefined && Object.hasOwn(options, key) ? options[key] : undefined;
}

export async function performRevocation(
  book: RevocationBook,
  target: RevocationTarget,
  options: RevokeOptions | undefined,
  audit: AuditSink | null,
  commit: CommitRevocation,
): Promise<RevocationReport> {
  const { kind, id } = checkedTarget(target);
  const reason = revocationReason(own(options, "reason") ?? "revoked");
  const expiresAt = revocationExpiry(own(options, "expiresAt"));
  const by = own(options, "by");
  const request = revokeRequest(kind, id);
  const started = systemClock.now();
  // A holder may always give up its own link (a token holder its own token); anything else needs a revoke grant.
  const giveUp = by !== undefined && kind === "link" && id === by.id;
  if (by !== undefined && !giveUp) {
    const decision = authorize(by, request);
    if (!decision.allowed) {
      await audit?.write(revocationEvent(by, request, reason, started, decision, null));
      throw denialError(decision);
    }
  } else if (by === undefined && audit !== null) {
    throw new InvalidInput("this token store records revocations in the audit log, so revoke needs { by }: the capability (with a revoke grant) of whoever revokes");
  }
  const entry: RevocationEntry = { kind, id, reason, revokedAt: started, reinstatedAt: null, expiresAt };
  const committing = commit(entry);
  if (committing !== undefined) await committing;
  // Applied here only once committed: a revocation that failed to store must not look done while other processes keep allowing.
  const reached = book.reach(() => {
    book.add(entry);
  });
  const report: RevocationReport = { kind, id, reason, at: started, reached };
  if (audit !== null && by !== undefined) await audit.write(revocationEvent(by, request, reason, started, { allowed: true, capabilityId: by.id }, report));
  return Object.freeze(report);
}

/** The audit event of a revocation: who (the revoker's capability), what (the request), why, and what it reached. */
function revocationEvent(
  by: Capability,
  request: ReturnType<typeof revokeRequest>,
  reason: string,
  at: number,
  decision: Parameters<AuditSink["write"]>[0]["decision"],
  report: RevocationReport | null,
): Parameters<AuditSink["write"]>[0] {
  return {
    id: timeOrderedId(),
    at,
    durationMs: Math.max(0, systemClock.now() - at),
    kind: "revocation",
    tool: null,
    request,
    decision,
    outcome:
      report === null
        ? { ok: false, errorCode: "ERR_CAPABILITY_DENIED", message: `the revoker's capability does not allow this revocation (${reason})` }
        : { ok: true, resultBytes: null, reason, reached: report.reached },
    subject: auditSubject(by),
  };
}
