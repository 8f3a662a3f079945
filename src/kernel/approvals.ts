/**
 * Human approval bound to the exact call. A request that an approval rule of
 * the chain matches is suspended, not refused: it is recorded with the
 * caller, lineage, canonical request, the hash of its arguments and an
 * expiry, approvers are told, and once every rule has its quorum of distinct
 * approvers (never the caller) the call runs under a single-use capability
 * that approves exactly that request with exactly those arguments, for at
 * most 60 seconds, and is revoked when the call returns. Every step is an
 * audit event of kind "approval" in the caller's lineage.
 *
 * Requests live in an ApprovalStore: in the process by default, or in a
 * SQLite or Postgres store that other processes share, so an approver's
 * command line (another process, another machine) approves a call a gateway
 * holds. The approved capability is made only in the process that waits on
 * the call, from what it proposed itself: a store says who approved, never
 * what runs.
 */
import { timeOrderedId } from "./ids.js";
import { argumentsHash } from "./arguments-hash.js";
import { isApprovalStore, memoryApprovalStore, type ApprovalEntry, type ApprovalStore } from "./approval-store.js";
import { auditSubject, failureOutcome, isAuditSink, type ApprovalRecord, type ApprovalStage, type AuditEvent, type AuditOutcome, type AuditSink, type AuditSubject } from "./audit-sink.js";
import { approvalRulesFor, caretaker, check, clockTime, deadDenial, isCapability, revocationSignal, stampApproval, type Capability } from "./capability.js";
import { systemClock, type Clock } from "./clock.js";
import { denialError, type Decision, type Denied } from "./decision.js";
import { ApprovalRefused, AuditFailure, CapabilityDenied, InvalidInput, NotACapability } from "./errors.js";
import { trustedMintsOption, untrustedMint } from "./mint-trust.js";
import type { ApprovalStamp, Approver } from "./node.js";
import { deepFreeze, snapshotPlainData, type PlainData } from "./plain-data.js";
import { checkRequest, type Request } from "./request.js";
import { requestKey } from "./rules.js";

/** Where an approval request stands. */
export type ApprovalStatus = "pending" | "approved" | "denied" | "expired" | "cancelled" | "executed";

/** One rule the call must satisfy: any `quorum` distinct principals among `approvers` (names, or `role:<name>`). */
export interface ApprovalRequirement {
  readonly approvers: readonly string[];
  readonly quorum: number;
}

/** What an approver is shown: exactly the call, never a capability or a token. */
export interface ApprovalView {
  readonly id: string;
  readonly status: ApprovalStatus;
  readonly createdAt: number;
  /** Until when it waits for approvers (ms since the epoch). */
  readonly expiresAt: number;
  /** Who asked: the caller's principal, tenants and roles, and the mint's request id. */
  readonly caller: { readonly principal: string; readonly tenants: readonly string[]; readonly roles: readonly string[]; readonly requestId: string };
  readonly capabilityId: string;
  /** The caller's lineage, root first, as link ids. */
  readonly lineage: readonly string[];
  /** The tool being called, when the request is part of a tool call. */
  readonly tool: string | null;
  readonly request: Request;
  /** The request in canonical form (paths resolved, URLs parsed), as the approval is bound to it. */
  readonly canonical: string;
  /** Further requests the call will make, approved with it. */
  readonly needs: readonly Request[];
  /** For each need, the arguments it will be made with, when the call bound them (a database write's query), else null. */
  readonly needArgs?: readonly (PlainData | null)[];
  /** The call's arguments, as the approver approves them, or null. */
  readonly args: PlainData | null;
  readonly argsHash: string | null;
  readonly policyVersion: string;
  readonly requirements: readonly ApprovalRequirement[];
  readonly approvals: readonly { readonly principal: string; readonly roles: readonly string[]; readonly at: number }[];
  readonly denial: { readonly principal: string; readonly at: number; readonly reason: string } | null;
}

/** What `run` is told besides the capability and the request. */
export interface ApprovalAsk {
  /** The call's arguments (plain data): bound by hash, so the approval holds for exactly these. */
  readonly args?: unknown;
  /** The tool being called, shown to approvers. */
  readonly tool?: string;
  /** Further requests the call will make, approved together with it. */
  readonly needs?: readonly Request[];
  /**
   * For each of `needs`, the arguments it will be made with (plain data), or
   * undefined. A database write bound this way is approved with exactly
   * those arguments, and the approved capability then allows no database
   * write but the bound ones.
   */
  readonly needArgs?: readonly unknown[];
  /** Stops waiting (the call fails with the signal's reason) and cancels the request. */
  readonly signal?: AbortSignal;
  /** Told once the request is recorded and waits for approvers (a gateway tells its client). */
  readonly onPending?: (request: ApprovalView) => void;
}

export interface ApprovalsOptions {
  /** Where every step is recorded; a step that cannot be recorded fails the call closed. */
  readonly audit: AuditSink;
  /** Where requests are kept (default: in this process). A shared store lets other processes list, approve and deny them. */
  readonly store?: ApprovalStore;
  /** The clock approval requests expire by (default: the system clock). */
  readonly clock?: Clock;
  /** How long a request waits for its approvers, in seconds (default 600, at most 86400). */
  readonly waitSeconds?: number;
  /** How long an approved call's capability lives, in seconds (default and at most 60). */
  readonly grantSeconds?: number;
  /** How often (ms) a waiting call looks for steps another process took in the store (default 250). */
  readonly pollMs?: number;
  /** Told of every new request (a webhook, a chat message); sees what approvers see. Its failure does not stop the request. */
  readonly notify?: (request: ApprovalView) => void | Promise<void>;
  /** The mints whose capabilities may approve (their ids); without it, any mint's. */
  readonly mints?: readonly string[];
  /** Names the policy in force, recorded with each request (default "1"). */
  readonly policyVersion?: string;
}

/** The approval flow of one application. */
export interface Approvals {
  /**
   * Runs `act` with a capability under which `request` is allowed: `cap`
   * itself when nothing in its chain asks approval of it (or of `needs`),
   * otherwise, once approved, a single-use capability bound to exactly this
   * request, its arguments and needs, valid for at most 60 seconds and
   * revoked when `act` settles. Rejects with ApprovalRefused when an
   * approver denies it or nobody approves in time, with Revoked when the
   * caller is revoked while it waits, with the denial when `cap` does not
   * allow the request at all.
   */
  run<T>(cap: Capability, request: Request, ask: ApprovalAsk, act: (approved: Capability) => T | Promise<T>): Promise<T>;
  /** The requests, newest first (at most 1000); pending ones only unless `all`. */
  list(options?: { readonly all?: boolean }): Promise<readonly ApprovalView[]>;
  /** One request; InvalidInput for an unknown id. */
  show(id: string): Promise<ApprovalView>;
  /**
   * Records `approver`'s approval: the principal and roles of its live
   * capability. Refused (CapabilityDenied) for the caller itself, for
   * someone no rule names, and for a second approval by the same principal;
   * InvalidInput once the request is no longer pending.
   */
  approve(id: string, approver: Capability): Promise<ApprovalView>;
  /** Records `approver`'s denial, which fails the call at once. Refused as `approve` is. */
  deny(id: string, approver: Capability, reason?: string): Promise<ApprovalView>;
}

const DEFAULT_WAIT_SECONDS = 600;
const MAX_WAIT_SECONDS = 24 * 3600;
const LIST_LIMIT = 1000;
/** Attempts at a change that other processes keep changing first; far more than contention between people approving needs. */
const MAX_ATTEMPTS = 100;
/** The longest an approved call's capability may live. */
export const MAX_APPROVED_SECONDS = 60;

interface Waiter {
  resolve(entry: ApprovalEntry): void;
  reject(error: unknown): void;
}

function seconds(value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new InvalidInput(`createApprovals: ${name} must be a number of seconds above 0 and at most ${max}, got ${typeof value === "number" ? String(value) : typeof value}`);
  }
  return value;
}

/** True when `principal` with `roles` is one of the approvers `r` names. */
function names(r: ApprovalRequirement, principal: string, roles: readonly string[]): boolean {
  return r.approvers.includes(principal) || roles.some((role) => r.approvers.includes(`role:${role}`));
}

/** Every requirement has its quorum of distinct approvers other than the caller. */
function satisfied(view: ApprovalView): boolean {
  return view.requirements.every((r) => view.approvals.filter((a) => a.principal !== view.caller.principal && names(r, a.principal, a.roles)).length >= r.quorum);
}

/** What the approval is bound to: the caller, the tool, the canonical request, the needs and the arguments' hash. */
function bindingOf(view: ApprovalView): string {
  return argumentsHash([view.capabilityId, view.caller.principal, view.tool, view.canonical, view.needs as unknown as PlainData, view.argsHash, view.needArgs ?? null]);
}

const isDbWrite = (r: Request) => r.action === "db.create" || r.action === "db.update" || r.action === "db.delete";

/** `needArgs` as plain data, one entry (or null) per need; InvalidInput when it is not a list as long as the needs. */
function boundArgs(value: unknown, needs: number): (PlainData | null)[] | null {
  if (value === undefined) return null;
  if (!Array.isArray(value) || value.length !== needs) throw new InvalidInput(`needArgs must list one entry (arguments, or undefined) per need: ${needs}`);
  return Array.from({ length: needs }, (_, i) => (value[i] === undefined ? null : snapshotPlainData(value[i], `needArgs.${i}`)));
}

/** Creates the approval flow; throws InvalidInput for a bad option. */
export function createApprovals(options: ApprovalsOptions): Approvals {
  const own = <K extends keyof ApprovalsOptions>(k: K): ApprovalsOptions[K] | undefined => (Object.hasOwn(options, k) ? options[k] : undefined);
  const sink = own("audit");
  if (!isAuditSink(sink)) throw new InvalidInput("createApprovals needs audit: an AuditSink; every step of an approval is recorded there");
  const given = own("store");
  if (given !== undefined && !isApprovalStore(given)) throw new InvalidInput("createApprovals: store must be an approval store (memoryApprovalStore, openSqliteApprovalStore, openPostgresApprovalStore)");
  const store = given ?? memoryApprovalStore();
  const clock = own("clock") ?? systemClock;
  const waitMs = seconds(own("waitSeconds"), "waitSeconds", DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS) * 1000;
  const grantMs = seconds(own("grantSeconds"), "grantSeconds", MAX_APPROVED_SECONDS, MAX_APPROVED_SECONDS) * 1000;
  const pollMs = own("pollMs") ?? 250;
  if (typeof pollMs !== "number" || !Number.isInteger(pollMs) || pollMs < 1 || pollMs > 60_000) throw new InvalidInput("createApprovals: pollMs must be a whole number of milliseconds from 1 to 60000");
  const notify = own("notify");
  if (notify !== undefined && typeof notify !== "function") throw new InvalidInput("createApprovals: notify must be a function");
  const policyVersion = own("policyVersion") ?? "1";
  if (typeof policyVersion !== "string" || policyVersion.length === 0 || policyVersion.length > 256) {
    throw new InvalidInput("createApprovals: policyVersion must be a string of 1 to 256 characters");
  }
  const trusted = trustedMintsOption(options, "createApprovals");
  /** Calls of this process waiting on their request, by its id. */
  const waiting = new Map<string, Waiter>();
  let poller: ReturnType<typeof setInterval> | null = null;

  const record = async (entry: Pick<ApprovalEntry, "view" | "subject" | "proposal">, stage: ApprovalStage, outcome: AuditOutcome, extra: { by?: string; reason?: string; subject?: AuditSubject; decision?: Decision } = {}) => {
    const { subject = entry.subject, decision = entry.proposal, ...rest } = extra;
    const approval: ApprovalRecord = { id: entry.view.id, stage, argsHash: entry.view.argsHash, ...rest };
    const event: AuditEvent = Object.freeze({ id: timeOrderedId(), at: clock.now(), durationMs: 0, kind: "approval", tool: entry.view.tool, request: entry.view.request, decision, outcome, subject, approval });
    try {
      await sink.write(event);
    } catch (e) {
      throw new AuditFailure(`the audit sink could not record the ${stage} step of approval ${entry.view.id}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  };

  const refused = (view: ApprovalView, message: string): AuditOutcome => ({ ok: false, errorCode: "ERR_APPROVAL_REFUSED", message: `approval ${view.id} ${message}` });

  const entryOf = async (id: string): Promise<ApprovalEntry> => {
    const entry = typeof id === "string" ? await store.get(id) : null;
    if (entry === null) throw new InvalidInput(`no approval request ${typeof id === "string" ? JSON.stringify(id) : typeof id}`);
    return entry;
  };

  /**
   * Applies `change` to the request as it now stands, again and again while
   * another process changes it first; `change` throws to give up. Returns
   * the entry as changed, or null when `change` returns null (nothing to do).
   */
  const change = async (id: string, next: (entry: ApprovalEntry) => ApprovalView | null): Promise<{ before: ApprovalEntry; after: ApprovalEntry } | null> => {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const before = await entryOf(id);
      const view = next(before);
      if (view === null) return null;
      const frozen = deepFreeze(view);
      if (await store.update(id, before.version, frozen)) return { before, after: { ...before, view: frozen, version: before.version + 1 } };
    }
    throw new InvalidInput(`approval request ${id} kept changing under ${MAX_ATTEMPTS} attempts to change it; try again`);
  };

  /** Expires the request if it is pending past its time on this flow's clock; the process that wins the change records it. */
  const expireIfDue = async (id: string) => {
    const done = await change(id, (e) => (e.view.status === "pending" && clock.now() >= e.view.expiresAt ? { ...e.view, status: "expired" } : null));
    if (done !== null) {
      await record(done.after, "expired", refused(done.after.view, "expired without enough approvals"));
      void look(id);
    }
  };

  /** The request after expiring it when due. */
  const current = async (id: string): Promise<ApprovalEntry> => {
    const entry = await entryOf(id);
    if (entry.view.status !== "pending" || clock.now() < entry.view.expiresAt) return entry;
    await expireIfDue(id);
    return entryOf(id);
  };

  /** Stops waiting on `id` here; the poller stops with the last waiting call. */
  const forget = (id: string) => {
    waiting.delete(id);
    if (waiting.size === 0 && poller !== null) {
      clearInterval(poller);
      poller = null;
    }
  };

  /** What the store's word on a request means for the call waiting on it: run (the entry), fail (an error), or wait (null). */
  const verdict = (id: string, entry: ApprovalEntry | null): ApprovalEntry | Error | null => {
    if (entry === null) return new ApprovalRefused(`approval request ${id} is no longer in the approval store`, "denied");
    const v = entry.view;
    switch (v.status) {
      case "pending":
        return null;
      case "approved":
        return entry;
      case "denied":
        return new ApprovalRefused(`${v.denial?.principal ?? "an approver"} denied the call: ${v.denial?.reason ?? "no reason given"}`, "denied");
      case "expired":
        return new ApprovalRefused(`the call was not approved before ${new Date(v.expiresAt).toISOString()}; ask again or use another way`, "expired");
      default:
        return new ApprovalRefused(`approval request ${id} was ${v.status} before the call could run`, "denied");
    }
  };

  /** Settles this process's call waiting on `id` by what the store says of it. */
  const look = async (id: string): Promise<void> => {
    const w = waiting.get(id);
    if (w === undefined) return;
    const entry = await store.get(id);
    const outcome = verdict(id, entry);
    if (outcome === null) {
      if (entry !== null && clock.now() >= entry.view.expiresAt) await expireIfDue(id);
      return;
    }
    if (waiting.get(id) !== w) return;
    forget(id);
    if (outcome instanceof Error) w.reject(outcome);
    else w.resolve(outcome);
  };

  const watch = (id: string, waiter: Waiter, expiresAt: number) => {
    waiting.set(id, waiter);
    // Other processes' steps arrive through the store; this one's own steps look at once.
    if (poller === null) {
      poller = setInterval(() => {
        for (const key of [...waiting.keys()]) void look(key).catch(() => undefined);
      }, pollMs);
    }
    // Neither timer is unref'd: a process with a call waiting for approval stays up until the call is settled.
    const timer = setTimeout(() => void look(id).catch(() => undefined), Math.max(0, expiresAt - clock.now()));
    return () => {
      clearTimeout(timer);
    };
  };

  /** The approver's identity, after checking their capability is genuine, live, trusted, and not the caller's. */
  const approverOf = (view: ApprovalView, approver: Capability): Approver => {
    if (!isCapability(approver)) throw new NotACapability("approving needs the approver's own capability; nothing else says who approves");
    const refusal = untrustedMint(approver, trusted) ?? deadDenial(approver);
    if (refusal !== null) throw denialError(refusal);
    const { principal, roles } = approver.mint;
    const denyApprover = (because: string) =>
      new CapabilityDenied(`${principal} ${because} (approval ${view.id})`, { capabilityId: approver.id, link: approver.depth, linkId: approver.id, rule: "approval", because });
    if (principal === view.caller.principal) throw denyApprover("may not approve or deny a call of their own");
    if (!view.requirements.some((r) => names(r, principal, roles))) throw denyApprover("is not an approver of this call");
    if (view.approvals.some((a) => a.principal === principal)) throw denyApprover("has already approved this call; another approver must agree");
    return { principal, roles: [...roles] };
  };

  const pendingOrThrow = (view: ApprovalView) => {
    if (view.status !== "pending") throw new InvalidInput(`approval request ${view.id} is no longer pending: it was ${view.status}`);
  };

  /** Ends a pending request the caller no longer waits on. */
  const cancel = async (id: string, why: string) => {
    const done = await change(id, (e) => (e.view.status === "pending" ? { ...e.view, status: "cancelled" } : null));
    if (done !== null) await record(done.after, "cancelled", refused(done.after.view, `was cancelled: ${why}`), { reason: why });
  };

  const propose = async (cap: Capability, request: Request, proposal: Denied, ask: { args: unknown; hasArgs: boolean; needs: readonly Request[]; needArgs: readonly (PlainData | null)[] | null; tool: string | null }): Promise<ApprovalEntry> => {
    const rules = [...new Set([...approvalRulesFor(cap, request, ask.hasArgs ? { args: ask.args } : {}), ...ask.needs.flatMap((need) => approvalRulesFor(cap, need))].map((r) => r.rule))];
    const createdAt = clock.now();
    const mint = cap.mint;
    const view: ApprovalView = deepFreeze({
      id: timeOrderedId(),
      status: "pending",
      createdAt,
      expiresAt: createdAt + waitMs,
      caller: { principal: mint.principal, tenants: [...mint.tenants], roles: [...mint.roles], requestId: mint.requestId },
      capabilityId: cap.id,
      lineage: cap.lineage.map((l) => l.id),
      tool: ask.tool,
      request: snapshotPlainData(request, "request") as unknown as Request,
      canonical: requestKey(checkRequest(request)),
      needs: ask.needs.map((n) => snapshotPlainData(n, "need") as unknown as Request),
      ...(ask.needArgs === null ? {} : { needArgs: ask.needArgs }),
      args: ask.hasArgs ? (ask.args as PlainData) : null,
      argsHash: ask.hasArgs ? argumentsHash(ask.args) : null,
      policyVersion,
      requirements: rules.map((r) => ({ approvers: [...r.approvers], quorum: r.quorum })),
      approvals: [],
      denial: null,
    });
    const entry = { view, subject: auditSubject(cap), proposal };
    // Record, then ask: approvers see only requests the log holds.
    await record(entry, "proposed", { ok: true, resultBytes: null });
    await store.insert(entry);
    return { ...entry, version: 1 };
  };

  const approvals: Approvals = {
    run: async <T>(cap: Capability, request: Request, ask: ApprovalAsk, act: (approved: Capability) => T | Promise<T>): Promise<T> => {
      if (!isCapability(cap)) throw new NotACapability("asking for approval needs the caller's capability");
      if (typeof act !== "function") throw new InvalidInput("run needs act: the function to run with the approved capability");
      // Untyped callers may pass nothing: a missing ask is an empty one.
      const askOf: unknown = ask;
      const has = (k: keyof ApprovalAsk) => typeof askOf === "object" && askOf !== null && Object.hasOwn(askOf, k);
      const args: unknown = has("args") ? snapshotPlainData(ask.args, "args") : undefined;
      const checkOptions = has("args") ? { args } : {};
      const needs = has("needs") ? (ask.needs ?? []) : [];
      const needArgs = has("needArgs") ? boundArgs(ask.needArgs, needs.length) : null;
      const tool = has("tool") ? (ask.tool ?? null) : null;
      const signal = has("signal") ? ask.signal : undefined;
      const onPending = has("onPending") ? ask.onPending : undefined;
      if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidInput("signal must be an AbortSignal");
      if (onPending !== undefined && typeof onPending !== "function") throw new InvalidInput("onPending must be a function");
      if (tool !== null && (typeof tool !== "string" || tool.length === 0 || tool.length > 256)) throw new InvalidInput("tool must be a tool name of 1 to 256 characters");
      // The request and each need, decided now: anything but a need for approval ends here.
      const decisions = [check(cap, request, checkOptions), ...needs.map((n) => check(cap, n))];
      const refusal = decisions.find((d): d is Denied => !d.allowed && d.code !== "ERR_APPROVAL_REQUIRED");
      if (refusal !== undefined) throw denialError(refusal);
      const proposal = decisions.find((d): d is Denied => !d.allowed);
      if (proposal === undefined) return act(cap);
      const proposed = await propose(cap, request, proposal, { args, hasArgs: has("args"), needs, needArgs, tool });
      const { id } = proposed.view;
      const binding = bindingOf(proposed.view);
      let waiter: Waiter = { resolve: () => undefined, reject: () => undefined };
      const approved = new Promise<ApprovalEntry>((resolve, reject) => {
        waiter = { resolve, reject };
      });
      const unwatch = watch(id, waiter, proposed.view.expiresAt);
      // The caller's revocation, or the caller giving up, ends the wait at once.
      const watched = revocationSignal(cap);
      const stop = (reason: unknown) => {
        if (waiting.get(id) !== waiter) return;
        forget(id);
        waiter.reject(reason);
        void cancel(id, reason instanceof Error ? reason.message : "the caller stopped waiting").catch(() => undefined);
      };
      const onRevoked = () => {
        stop(watched.signal.reason);
      };
      const onAbort = () => {
        stop(signal?.reason);
      };
      watched.signal.addEventListener("abort", onRevoked, { once: true });
      if (watched.signal.aborted) onRevoked();
      signal?.addEventListener("abort", onAbort, { once: true });
      if (signal?.aborted === true) onAbort();
      if (waiting.has(id)) {
        onPending?.(proposed.view);
        // The notice is a courtesy: approvers can always list pending requests, so its failure does not fail the call.
        if (notify !== undefined) {
          void Promise.resolve()
            .then(() => notify(proposed.view))
            .catch(() => undefined);
        }
      }
      let entry: ApprovalEntry;
      try {
        entry = await approved;
      } finally {
        unwatch();
        watched.signal.removeEventListener("abort", onRevoked);
        watched.dispose();
        signal?.removeEventListener("abort", onAbort);
      }
      const dead = deadDenial(cap);
      if (dead !== null) throw denialError(dead);
      // The store says who approved; what runs is what this process proposed. A record changed in the store approves nothing.
      if (bindingOf(entry.view) !== binding || entry.view.argsHash !== proposed.view.argsHash) {
        throw new ApprovalRefused(`approval request ${id} in the store no longer describes the call this process proposed; it approves nothing`, "denied");
      }
      const stamp: ApprovalStamp = deepFreeze({
        id,
        approvers: entry.view.approvals.map((a) => ({ principal: a.principal, roles: [...a.roles] })),
        bindings: [
          { request: proposed.view.canonical, args: proposed.view.argsHash, write: isDbWrite(request) && proposed.view.argsHash !== null },
          ...needs.map((n, i) => {
            const bound = needArgs?.[i] ?? null;
            return { request: requestKey(checkRequest(n)), args: bound === null ? null : argumentsHash(bound), write: bound !== null && isDbWrite(n) };
          }),
        ],
      });
      // Taken from "approved" first: whichever process gets there first runs it, and only once.
      const taken = await change(id, (e) => (e.view.status === "approved" ? { ...e.view, status: "executed" } : null));
      if (taken === null) throw new ApprovalRefused(`approval request ${id} was used or changed before the call could run`, "denied");
      const once = caretaker(stampApproval(cap, stamp, { expiresAt: Math.floor(clockTime(cap) + grantMs), maxUses: 1 + needs.length }), {});
      let outcome: AuditOutcome = { ok: true, resultBytes: null };
      try {
        return await act(once.capability);
      } catch (e) {
        outcome = failureOutcome(e);
        throw e;
      } finally {
        once.revoke(`approved call ${id} has returned`);
        await record(taken.after, "executed", outcome, { subject: auditSubject(once.capability), decision: { allowed: true, capabilityId: once.capability.id } });
      }
    },

    list: async (listOptions?: { readonly all?: boolean }) => {
      const entries = await store.list({ all: listOptions?.all === true, limit: LIST_LIMIT });
      const now = clock.now();
      const due = entries.filter((e) => e.view.status === "pending" && now >= e.view.expiresAt);
      for (const e of due) await expireIfDue(e.view.id);
      if (due.length === 0) return entries.map((e) => e.view);
      return (await store.list({ all: listOptions?.all === true, limit: LIST_LIMIT })).map((e) => e.view);
    },

    show: async (id: string) => (await current(id)).view,

    approve: async (id: string, approver: Capability) => {
      pendingOrThrow((await current(id)).view);
      let who: Approver | null = null;
      // Counted first, so the same approver racing in twice is refused the second time; taken back if it cannot be recorded.
      const counted = await change(id, (e) => {
        pendingOrThrow(e.view);
        who = approverOf(e.view, approver);
        return { ...e.view, approvals: [...e.view.approvals, { principal: who.principal, roles: who.roles, at: clock.now() }] };
      });
      const { principal } = who as unknown as Approver;
      if (counted === null) throw new InvalidInput(`approval request ${id} could not be changed`);
      try {
        await record(counted.after, "approved", { ok: true, resultBytes: null }, { by: principal });
      } catch (e) {
        await change(id, (x) => ({ ...x.view, approvals: x.view.approvals.filter((a) => a.principal !== principal) })).catch(() => undefined);
        throw e;
      }
      // Only recorded approvals complete a request: the call may run from the moment it says "approved".
      const done = await change(id, (e) => (e.view.status === "pending" && satisfied(e.view) ? { ...e.view, status: "approved" } : null));
      void look(id).catch(() => undefined);
      return (done?.after ?? (await entryOf(id))).view;
    },

    deny: async (id: string, approver: Capability, reason?: string) => {
      pendingOrThrow((await current(id)).view);
      const why = typeof reason === "string" && reason.length > 0 ? reason.slice(0, 1000) : "no reason given";
      let by = "";
      const denied = await change(id, (e) => {
        pendingOrThrow(e.view);
        // A principal who has approved may still deny: refusing is never a second vote for the call.
        by = approverOf({ ...e.view, approvals: [] }, approver).principal;
        return { ...e.view, status: "denied", denial: { principal: by, at: clock.now(), reason: why } };
      });
      if (denied === null) throw new InvalidInput(`approval request ${id} could not be changed`);
      void look(id).catch(() => undefined);
      await record(denied.after, "denied", refused(denied.after.view, `was denied by ${by}: ${why}`), { by, reason: why });
      return denied.after.view;
    },
  };
  return Object.freeze(approvals);
}
