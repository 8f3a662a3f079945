/**
 * Human approval bound to the exact call. A request that an approval rule of
 * the chain matches is suspended, not refused: it is recorded with the
 * caller, lineage, canonical request, the hash of its arguments and an
 * expiry, approvers are told, and once every rule has its quorum of distinct
 * approvers (never the caller) the call runs under a single-use capability
 * that approves exactly that request with exactly those arguments, for at
 * most 60 seconds, and is revoked when the call returns. Every step is an
 * audit event of kind "approval" in the caller's lineage.
 */
import { randomUUID } from "node:crypto";
import { argumentsHash } from "./arguments-hash.js";
import { auditSubject, failureOutcome, isAuditSink, type ApprovalRecord, type ApprovalStage, type AuditEvent, type AuditOutcome, type AuditSink } from "./audit-sink.js";
import { approvalRulesFor, caretaker, check, clockTime, deadDenial, isCapability, revocationSignal, stampApproval, type Capability } from "./capability.js";
import { systemClock, type Clock } from "./clock.js";
import { denialError, type Decision, type Denied } from "./decision.js";
import { ApprovalRefused, AuditFailure, CapabilityDenied, InvalidInput, NotACapability } from "./errors.js";
import { trustedMintsOption, untrustedMint } from "./mint-trust.js";
import type { ApprovalStamp } from "./node.js";
import { deepFreeze, snapshotPlainData, type PlainData } from "./plain-data.js";
import { checkRequest, type Request } from "./request.js";
import { isApproverOf, requestKey, type CompiledApprovalRule } from "./rules.js";

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
  /** Further requests the call will make, approved with it. */
  readonly needs: readonly Request[];
  /** The call's arguments, as the approver approves them, or null. */
  readonly args: PlainData | null;
  readonly argsHash: string | null;
  readonly policyVersion: string;
  readonly requirements: readonly ApprovalRequirement[];
  readonly approvals: readonly { readonly principal: string; readonly at: number }[];
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
  /** Stops waiting (the call fails with the signal's reason) and cancels the request. */
  readonly signal?: AbortSignal;
}

export interface ApprovalsOptions {
  /** Where every step is recorded; a step that cannot be recorded fails the call closed. */
  readonly audit: AuditSink;
  /** The clock approval requests expire by (default: the system clock). */
  readonly clock?: Clock;
  /** How long a request waits for its approvers, in seconds (default 600, at most 86400). */
  readonly waitSeconds?: number;
  /** How long an approved call's capability lives, in seconds (default and at most 60). */
  readonly grantSeconds?: number;
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
  /** The requests, newest first; pending ones only unless `all`. */
  list(options?: { readonly all?: boolean }): readonly ApprovalView[];
  /** One request; InvalidInput for an unknown id. */
  show(id: string): ApprovalView;
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
/** Settled requests kept for `list({ all: true })` and `show`. */
const MAX_REMEMBERED = 1000;
/** The longest an approved call's capability may live. */
export const MAX_APPROVED_SECONDS = 60;

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

interface Pending {
  view: ApprovalView;
  readonly rules: readonly CompiledApprovalRule[];
  readonly approvers: Map<string, { principal: string; roles: readonly string[] }>;
  readonly caller: Capability;
  readonly proposal: Denied;
  readonly waiter: Waiter;
  timer: ReturnType<typeof setTimeout> | null;
}

function seconds(value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new InvalidInput(`createApprovals: ${name} must be a number of seconds above 0 and at most ${max}, got ${typeof value === "number" ? String(value) : typeof value}`);
  }
  return value;
}

/** Creates the approval flow; throws InvalidInput for a bad option. */
export function createApprovals(options: ApprovalsOptions): Approvals {
  const own = <K extends keyof ApprovalsOptions>(k: K): ApprovalsOptions[K] | undefined => (Object.hasOwn(options, k) ? options[k] : undefined);
  const sink = own("audit");
  if (!isAuditSink(sink)) throw new InvalidInput("createApprovals needs audit: an AuditSink; every step of an approval is recorded there");
  const clock = own("clock") ?? systemClock;
  const waitMs = seconds(own("waitSeconds"), "waitSeconds", DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS) * 1000;
  const grantMs = seconds(own("grantSeconds"), "grantSeconds", MAX_APPROVED_SECONDS, MAX_APPROVED_SECONDS) * 1000;
  const notify = own("notify");
  if (notify !== undefined && typeof notify !== "function") throw new InvalidInput("createApprovals: notify must be a function");
  const policyVersion = own("policyVersion") ?? "1";
  if (typeof policyVersion !== "string" || policyVersion.length === 0 || policyVersion.length > 256) {
    throw new InvalidInput("createApprovals: policyVersion must be a string of 1 to 256 characters");
  }
  const trusted = trustedMintsOption(options, "createApprovals");
  const requests = new Map<string, Pending>();

  const record = async (p: Pending, stage: ApprovalStage, subject: Capability, decision: Decision, outcome: AuditOutcome, extra: { by?: string; reason?: string } = {}) => {
    const approval: ApprovalRecord = { id: p.view.id, stage, argsHash: p.view.argsHash, ...extra };
    const event: AuditEvent = Object.freeze({
      id: randomUUID(),
      at: clock.now(),
      durationMs: 0,
      kind: "approval",
      tool: p.view.tool,
      request: p.view.request,
      decision,
      outcome,
      subject: auditSubject(subject),
      approval,
    });
    try {
      await sink.write(event);
    } catch (e) {
      throw new AuditFailure(`the audit sink could not record the ${stage} step of approval ${p.view.id}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  };

  /** Keeps `p` where approvers find it; the oldest settled requests are forgotten beyond a bound, so the map cannot grow without end. */
  const remember = (p: Pending) => {
    requests.set(p.view.id, p);
    if (requests.size <= MAX_REMEMBERED) return;
    for (const [key, old] of requests) {
      if (requests.size <= MAX_REMEMBERED) break;
      if (old.view.status !== "pending") requests.delete(key);
    }
  };

  /** Starts the timer that expires `p` at its time, should nobody look before then. */
  const arm = (p: Pending) => {
    p.timer = setTimeout(() => void expire(p).catch(() => undefined), Math.max(0, p.view.expiresAt - clock.now()));
    p.timer.unref();
  };

  const refused = (p: Pending, message: string): AuditOutcome => ({ ok: false, errorCode: "ERR_APPROVAL_REFUSED", message: `approval ${p.view.id} ${message}` });

  /** Ends a pending request: its status, its waiter, its timer. */
  const settle = (p: Pending, status: ApprovalStatus, changes: Partial<ApprovalView> = {}) => {
    p.view = deepFreeze({ ...p.view, ...changes, status });
    if (p.timer !== null) clearTimeout(p.timer);
    p.timer = null;
  };

  const expire = async (p: Pending) => {
    if (p.view.status !== "pending") return;
    settle(p, "expired");
    p.waiter.reject(new ApprovalRefused(`the call was not approved before ${new Date(p.view.expiresAt).toISOString()}; ask again or use another way`, "expired"));
    await record(p, "expired", p.caller, p.proposal, refused(p, "expired without enough approvals"));
  };

  /** Expires every pending request past its time on the flow's clock. */
  const sweep = async () => {
    const now = clock.now();
    for (const p of requests.values()) if (p.view.status === "pending" && now >= p.view.expiresAt) await expire(p);
  };

  const find = (id: string): Pending => {
    const p = typeof id === "string" ? requests.get(id) : undefined;
    if (p === undefined) throw new InvalidInput(`no approval request ${typeof id === "string" ? JSON.stringify(id) : typeof id}`);
    return p;
  };

  /** The approver's identity, after checking their capability is genuine, live, trusted, and not the caller's. */
  const approverOf = (p: Pending, approver: Capability): { principal: string; roles: readonly string[] } => {
    if (!isCapability(approver)) throw new NotACapability("approving needs the approver's own capability; nothing else says who approves");
    const refusal = untrustedMint(approver, trusted) ?? deadDenial(approver);
    if (refusal !== null) throw denialError(refusal);
    const { principal, roles } = approver.mint;
    const denyApprover = (because: string) =>
      new CapabilityDenied(`${principal} ${because} (approval ${p.view.id})`, { capabilityId: approver.id, link: approver.depth, linkId: approver.id, rule: "approval", because });
    if (principal === p.view.caller.principal) throw denyApprover("may not approve or deny a call of their own");
    if (!p.rules.some((rule) => isApproverOf(rule, principal, roles))) throw denyApprover("is not an approver of this call");
    return { principal, roles: [...roles] };
  };

  const satisfied = (p: Pending) =>
    p.rules.every((rule) => {
      let agreeing = 0;
      for (const a of p.approvers.values()) if (a.principal !== p.view.caller.principal && isApproverOf(rule, a.principal, a.roles)) agreeing++;
      return agreeing >= rule.quorum;
    });

  const pendingOrThrow = (p: Pending) => {
    if (p.view.status !== "pending") throw new InvalidInput(`approval request ${p.view.id} is no longer pending: it was ${p.view.status}`);
  };

  const approvals: Approvals = {
    run: async <T>(cap: Capability, request: Request, ask: ApprovalAsk, act: (approved: Capability) => T | Promise<T>): Promise<T> => {
      if (!isCapability(cap)) throw new NotACapability("asking for approval needs the caller's capability");
      if (typeof act !== "function") throw new InvalidInput("run needs act: the function to run with the approved capability");
      // Untyped callers may pass nothing: a missing ask is an empty one.
      const askOf: unknown = ask;
      const given = (k: keyof ApprovalAsk) => typeof askOf === "object" && askOf !== null && Object.hasOwn(askOf, k);
      const args: unknown = given("args") ? snapshotPlainData(ask.args, "args") : undefined;
      const checkOptions = given("args") ? { args } : {};
      const needs = given("needs") ? (ask.needs ?? []) : [];
      const tool = given("tool") ? (ask.tool ?? null) : null;
      const signal = given("signal") ? ask.signal : undefined;
      if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidInput("signal must be an AbortSignal");
      if (tool !== null && (typeof tool !== "string" || tool.length === 0 || tool.length > 256)) throw new InvalidInput("tool must be a tool name of 1 to 256 characters");
      // The request and each need, decided now: anything but a need for approval ends here.
      const decisions = [check(cap, request, checkOptions), ...needs.map((n) => check(cap, n))];
      const refusal = decisions.find((d): d is Denied => !d.allowed && d.code !== "ERR_APPROVAL_REQUIRED");
      if (refusal !== undefined) throw denialError(refusal);
      const proposal = decisions.find((d): d is Denied => !d.allowed);
      if (proposal === undefined) return act(cap);
      const rules = [...new Set([...approvalRulesFor(cap, request, checkOptions), ...needs.flatMap((need) => approvalRulesFor(cap, need))].map((r) => r.rule))];
      const hash = given("args") ? argumentsHash(args) : null;
      const createdAt = clock.now();
      const mint = cap.mint;
      const id = randomUUID();
      let waiter: Waiter = { resolve: () => undefined, reject: () => undefined };
      const approved = new Promise<void>((resolve, reject) => {
        waiter = { resolve, reject };
      });
      const p: Pending = {
        view: deepFreeze({
          id,
          status: "pending",
          createdAt,
          expiresAt: createdAt + waitMs,
          caller: { principal: mint.principal, tenants: [...mint.tenants], roles: [...mint.roles], requestId: mint.requestId },
          capabilityId: cap.id,
          lineage: cap.lineage.map((l) => l.id),
          tool,
          request: snapshotPlainData(request, "request") as unknown as Request,
          needs: needs.map((n) => snapshotPlainData(n, "need") as unknown as Request),
          args: given("args") ? (args as PlainData) : null,
          argsHash: hash,
          policyVersion,
          requirements: rules.map((r) => ({ approvers: [...r.approvers], quorum: r.quorum })),
          approvals: [],
          denial: null,
        }),
        rules,
        approvers: new Map(),
        caller: cap,
        proposal,
        waiter,
        timer: null,
      };
      // Record, then ask: approvers see only requests the log holds.
      await record(p, "proposed", cap, proposal, { ok: true, resultBytes: null });
      remember(p);
      arm(p);
      // The caller's revocation, or the caller giving up, ends the wait at once.
      const watched = revocationSignal(cap);
      const cancel = (reason: unknown) => {
        if (p.view.status !== "pending") return;
        const why = reason instanceof Error ? reason.message : "the caller stopped waiting";
        settle(p, "cancelled");
        waiter.reject(reason);
        void record(p, "cancelled", cap, proposal, refused(p, `was cancelled: ${why}`), { reason: why }).catch(() => undefined);
      };
      const onRevoked = () => {
        cancel(watched.signal.reason);
      };
      const onAbort = () => {
        cancel(signal?.reason);
      };
      watched.signal.addEventListener("abort", onRevoked, { once: true });
      if (watched.signal.aborted) onRevoked();
      signal?.addEventListener("abort", onAbort, { once: true });
      if (signal?.aborted === true) onAbort();
      if (notify !== undefined && p.view.status === "pending") {
        // The notice is a courtesy: approvers can always list pending requests, so its failure does not fail the call.
        void Promise.resolve()
          .then(() => notify(p.view))
          .catch(() => undefined);
      }
      try {
        await approved;
      } finally {
        watched.signal.removeEventListener("abort", onRevoked);
        watched.dispose();
        signal?.removeEventListener("abort", onAbort);
      }
      const dead = deadDenial(cap);
      if (dead !== null) throw denialError(dead);
      const stamp: ApprovalStamp = deepFreeze({
        id,
        approvers: [...p.approvers.values()],
        bindings: [
          { request: requestKey(checkRequest(request)), args: hash },
          ...needs.map((n) => ({ request: requestKey(checkRequest(n)), args: null })),
        ],
      });
      const once = caretaker(stampApproval(cap, stamp, { expiresAt: Math.floor(clockTime(cap) + grantMs), maxUses: 1 + needs.length }), {});
      let outcome: AuditOutcome = { ok: true, resultBytes: null };
      try {
        return await act(once.capability);
      } catch (e) {
        outcome = failureOutcome(e);
        throw e;
      } finally {
        once.revoke(`approved call ${id} has returned`);
        settle(p, "executed");
        await record(p, "executed", once.capability, { allowed: true, capabilityId: once.capability.id }, outcome);
      }
    },

    list: (listOptions?: { readonly all?: boolean }) => {
      void sweep().catch(() => undefined);
      const all = listOptions?.all === true;
      return [...requests.values()]
        .map((p) => p.view)
        .filter((v) => all || v.status === "pending")
        .sort((a, b) => b.createdAt - a.createdAt);
    },

    show: (id: string) => {
      void sweep().catch(() => undefined);
      return find(id).view;
    },

    approve: async (id: string, approver: Capability) => {
      await sweep();
      const p = find(id);
      pendingOrThrow(p);
      const who = approverOf(p, approver);
      if (p.approvers.has(who.principal)) {
        throw new CapabilityDenied(`${who.principal} has already approved approval request ${id}; another approver must agree`, {
          capabilityId: approver.id,
          link: approver.depth,
          linkId: approver.id,
          rule: "approval",
          because: "has already approved this call",
        });
      }
      // Counted at once, so the same approver racing in twice is refused the second time; taken back if it cannot be recorded.
      const before = p.view;
      p.approvers.set(who.principal, who);
      p.view = deepFreeze({ ...p.view, approvals: [...p.view.approvals, { principal: who.principal, at: clock.now() }] });
      const complete = satisfied(p);
      if (complete) settle(p, "approved");
      try {
        await record(p, "approved", p.caller, p.proposal, { ok: true, resultBytes: null }, { by: who.principal });
      } catch (e) {
        p.approvers.delete(who.principal);
        p.view = before;
        if (complete) arm(p);
        throw e;
      }
      if (complete) p.waiter.resolve();
      return p.view;
    },

    deny: async (id: string, approver: Capability, reason?: string) => {
      await sweep();
      const p = find(id);
      pendingOrThrow(p);
      const who = approverOf(p, approver);
      const why = typeof reason === "string" && reason.length > 0 ? reason.slice(0, 1000) : "no reason given";
      settle(p, "denied", { denial: { principal: who.principal, at: clock.now(), reason: why } });
      p.waiter.reject(new ApprovalRefused(`${who.principal} denied the call: ${why}`, "denied"));
      await record(p, "denied", p.caller, p.proposal, refused(p, `was denied by ${who.principal}: ${why}`), { by: who.principal, reason: why });
      return p.view;
    },
  };
  return Object.freeze(approvals);
}
