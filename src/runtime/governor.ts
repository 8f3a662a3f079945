import { randomUUID } from "node:crypto";
import {
  CapabilityDenied,
  check,
  clockTime,
  InvalidInput,
  isCapability,
  narrow,
  restrict,
  revocable,
  SessionClosed,
  TaskCancelled,
  TaskTimedOut,
  type Capability,
  type Grant,
  type MintRecord,
  type Request,
} from "../kernel/index.js";
import type { CallPlan, Dispatcher } from "../tools/index.js";
import { tenantFor } from "../tools/internal.js";
import type { RoutedTool } from "./executor.js";
import type { Session } from "./session.js";

/** What a critical-operation policy is asked to approve. */
export interface CriticalCheck {
  readonly principal: MintRecord;
  readonly sessionId: string;
  readonly taskId: string;
  readonly tool: string;
  /** The validated input. */
  readonly input: unknown;
  /** The requests the call will make. */
  readonly needs: readonly Request[];
}

/** Operations that need a fresh re-mint after a policy check: a task's own capability never reaches them. */
export interface CriticalOptions {
  readonly tools: readonly string[];
  /** Approves one call; anything but `true` refuses it. */
  readonly policy: (check: CriticalCheck) => boolean | Promise<boolean>;
  /** How long a re-minted capability lives (default 30 seconds); it also allows exactly one call. */
  readonly seconds?: number;
}

/** What a Governor is built from. */
export interface GovernorOptions {
  readonly session: Session;
  readonly dispatcher: Dispatcher;
  readonly critical?: CriticalOptions;
}

/** One subtask: what it may do (within the session), how long it may take, and the work itself. */
export interface SubtaskSpec<T> {
  readonly name: string;
  readonly grant: Grant;
  readonly timeoutMs: number;
  readonly run: (task: TaskContext) => Promise<T>;
}

/** What a subtask's work receives: an attenuated, revocable capability tied to the subtask's lifetime, and the means to use it. */
export interface TaskContext {
  readonly id: string;
  readonly sessionId: string;
  /** Revoked when the subtask completes, fails, is cancelled or times out; it also expires at the deadline. */
  readonly capability: Capability;
  /** Aborted (with TaskTimedOut or TaskCancelled) when the subtask is stopped. */
  readonly signal: AbortSignal;
  readonly dispatcher: Dispatcher;
  /** The critical tools the subtask's grant names, each call run through a fresh re-mint after the policy check. */
  readonly criticalTools: readonly RoutedTool[];
  /** A capability for exactly one call of `tool` with `input`, valid for `seconds`, revoked with the task (see Governor.escalate). */
  escalate(tool: string, input: unknown, seconds: number): Promise<Capability>;
}

/** How a subtask ended. */
export type TaskStatus = "running" | "completed" | "failed" | "timed-out" | "cancelled";

/** A running subtask. */
export interface TaskHandle<T> {
  readonly id: string;
  readonly name: string;
  /** Settles when the subtask ends: its value, its error, TaskTimedOut or TaskCancelled (without waiting for work that ignores its deadline). */
  readonly result: Promise<T>;
  readonly status: TaskStatus;
  /** Stops the subtask: revokes its capability and aborts its signal. No effect once it has ended. */
  cancel(reason?: string): void;
}

/** How one subtask of `Governor.run` ended. */
export type SubtaskOutcome =
  | { readonly name: string; readonly id: string; readonly status: "completed"; readonly value: unknown }
  | { readonly name: string; readonly id: string; readonly status: "failed" | "timed-out" | "cancelled"; readonly error: unknown };

/** The capability broker of one session. */
export interface Governor {
  /** Starts a subtask under `session.capability` narrowed by its grant (critical tools removed), revocable and bounded by its timeout. */
  spawn<T>(spec: SubtaskSpec<T>): TaskHandle<T>;
  /** Runs a task decomposed into subtasks, concurrently, and reports how each ended. */
  run(subtasks: readonly SubtaskSpec<unknown>[]): Promise<readonly SubtaskOutcome[]>;
  /**
   * Time-bounded escalation: a capability, derived from the session's, that
   * allows exactly one call of `tool` with `input` (its tool.call and its
   * needs, once each) for `seconds`. Refused for critical tools, which
   * need a fresh re-mint instead, and for any tool whose needs call a
   * critical tool as a sub-tool, at any depth.
   */
  escalate(options: { readonly tool: string; readonly input: unknown; readonly seconds: number }): Promise<Capability>;
}

const DEFAULT_CRITICAL_SECONDS = 30;
const MAX_SECONDS = 24 * 3600;

/** Creates the Governor of a session; throws InvalidInput for a bad option. */
export function createGovernor(options: GovernorOptions): Governor {
  const { session, dispatcher } = options;
  if (!isCapability(session.capability)) throw new InvalidInput("a Governor needs an open Session");
  const critical = readCritical(options.critical);

  /** The session's authority for one call, narrowed to exactly its plan and `seconds`, usable for that call only. */
  const onceFor = (base: Capability, plan: CallPlan, seconds: number): Capability => {
    const grant: Grant = { ...plan.grant, tools: [plan.tool.name, ...(plan.grant.tools ?? [])] };
    return restrict(narrow(base, grant), { expiresAt: Math.floor(clockTime(base) + seconds * 1000), maxUses: 1 + plan.needs.length });
  };

  const planFor = (tool: string, input: unknown): Promise<CallPlan> => dispatcher.plan(tool, input, session.capability);

  const escalate = async (tool: string, input: unknown, seconds: number, labels: Record<string, string>, onRevoke: (revoke: () => void) => void) => {
    checkSeconds(seconds);
    if (critical.tools.has(tool)) throw new InvalidInput(`tool ${tool} is critical: it runs only under a fresh re-mint after the policy check, never by escalation`);
    if (session.closed) throw new SessionClosed(`session ${session.id} is closed`);
    const plan = await planFor(tool, input);
    const reached = criticalReachedBy(plan, critical.tools);
    if (reached !== undefined) {
      throw new InvalidInput(
        `tool ${tool} reaches critical tool ${reached} through its needs (as a sub-tool call); it runs only under a fresh re-mint after the policy check, never by escalation`,
      );
    }
    const lease = revocable(onceFor(session.capability, plan, seconds), { labels });
    onRevoke(() => {
      lease.revoke("the task that asked for the escalation has ended");
    });
    return lease.capability;
  };

  const spawn = <T>(spec: SubtaskSpec<T>): TaskHandle<T> => {
    const { name, grant, timeoutMs, run } = readSpec(spec);
    if (session.closed) throw new SessionClosed(`session ${session.id} is closed; it starts no more tasks`);
    const id = `${name}-${randomUUID().slice(0, 8)}`;
    const labels = { session: session.id, task: id };
    const base = narrow(session.capability, withoutCritical(grant, critical.tools));
    const lease = revocable(restrict(base, { expiresAt: Math.floor(clockTime(base) + timeoutMs) }), { labels });
    const cleanups: (() => void)[] = [];
    const controller = new AbortController();
    let status: TaskStatus = "running";
    const running = () => status === "running";
    let settle: { resolve: (v: T) => void; reject: (e: unknown) => void } | null = null;
    const result = new Promise<T>((resolve, reject) => {
      settle = { resolve, reject };
    });

    /** Ends the task once: revokes everything it was given, stops its timer, aborts its signal. */
    const end = (next: Exclude<TaskStatus, "running">, reason: string, error: unknown): boolean => {
      if (status !== "running") return false;
      status = next;
      clearTimeout(timer);
      lease.revoke(reason);
      for (const cleanup of cleanups.splice(0)) cleanup();
      controller.abort(error ?? new TaskCancelled(reason));
      return true;
    };

    const timer = setTimeout(() => {
      const error = new TaskTimedOut(`task ${id} ran past its ${timeoutMs} ms deadline; its capabilities were revoked`);
      if (end("timed-out", `task ${id} timed out after ${timeoutMs} ms`, error)) settle?.reject(error);
    }, timeoutMs);

    const routed = [...critical.tools]
      .filter((t) => grant.tools?.includes(t) === true && dispatcher.tool(t) !== undefined)
      .filter((t) => check(session.capability, { action: "tool.call", tool: t, ...tenantOf(session) }).allowed)
      .map((t): RoutedTool => {
        const tool = dispatcher.tool(t);
        if (tool === undefined) throw new InvalidInput(`no tool named ${t}`);
        return {
          entry: Object.freeze({ name: tool.name, description: tool.description, inputSchema: tool.inputSchema }),
          call: (input) => callCritical(t, input),
        };
      });

    /** A critical call: policy check, fresh re-mint, a capability for exactly this call, then dispatch. */
    const callCritical = async (tool: string, input: unknown): Promise<unknown> => {
      if (status !== "running") throw endedError(id, status);
      const plan = await planFor(tool, input);
      const approved: unknown = await critical.policy(Object.freeze({ principal: session.principal, sessionId: session.id, taskId: id, tool, input: plan.input, needs: plan.needs }));
      if (approved !== true) return refuse(tool, input, "the critical-operation policy refused it");
      // The policy may take its time; the task may have ended meanwhile.
      if (!running()) throw endedError(id, status);
      let fresh: Capability;
      try {
        fresh = session.remint({ requestId: `${id}:${tool}:${randomUUID().slice(0, 8)}` });
      } catch (e) {
        if (e instanceof CapabilityDenied) return refuse(tool, input, `the mint refused a fresh capability (${e.message})`);
        throw e;
      }
      const once = revocable(onceFor(narrow(fresh, grant), plan, critical.seconds), { labels });
      cleanups.push(() => {
        once.revoke(`task ${id} has ended`);
      });
      try {
        return await dispatcher.call(tool, input, once.capability);
      } finally {
        once.revoke(`the critical call to ${tool} has returned`);
      }
    };

    /**
     * A refused critical call is still an invocation: it is dispatched with
     * the task's own capability, which never reaches a critical tool, so the
     * dispatcher denies it and records the denial.
     */
    const refuse = async (tool: string, input: unknown, why: string): Promise<unknown> => {
      try {
        return await dispatcher.call(tool, input, lease.capability);
      } catch (e) {
        if (e instanceof CapabilityDenied) throw new CapabilityDenied(`critical tool ${tool} needs a fresh capability and ${why}; ${e.message}`, e.details);
        throw e;
      }
    };

    const context: TaskContext = Object.freeze({
      id,
      sessionId: session.id,
      capability: lease.capability,
      signal: controller.signal,
      dispatcher,
      criticalTools: Object.freeze(routed),
      escalate: (tool: string, input: unknown, seconds: number) => {
        if (status !== "running") return Promise.reject(endedError(id, status));
        return escalate(tool, input, seconds, labels, (revoke) => cleanups.push(revoke));
      },
    });

    // Started on a later turn, so a run function that throws synchronously is still a failed task, not a throw from spawn.
    void Promise.resolve()
      .then(() => run(context))
      .then(
        (value) => {
          if (end("completed", `task ${id} completed`, null)) settle?.resolve(value);
        },
        (error: unknown) => {
          if (end("failed", `task ${id} failed`, error)) settle?.reject(error);
        },
      );

    return Object.freeze({
      id,
      name,
      result,
      get status() {
        return status;
      },
      cancel: (reason = "cancelled by its governor") => {
        const error = new TaskCancelled(`task ${id} was cancelled: ${reason}`);
        if (end("cancelled", reason, error)) settle?.reject(error);
      },
    });
  };

  return Object.freeze({
    spawn,
    run: async (subtasks: readonly SubtaskSpec<unknown>[]) => {
      const given: unknown = subtasks;
      if (!Array.isArray(given) || given.length === 0) throw new InvalidInput("run needs a non-empty array of subtasks");
      const handles = subtasks.map((s) => spawn(s));
      const settled = await Promise.allSettled(handles.map((h) => h.result));
      return Object.freeze(
        settled.map((s, i): SubtaskOutcome => {
          const h = handles[i] as TaskHandle<unknown>;
          return s.status === "fulfilled"
            ? { name: h.name, id: h.id, status: "completed", value: s.value }
            : { name: h.name, id: h.id, status: h.status === "running" || h.status === "completed" ? "failed" : h.status, error: s.reason };
        }),
      );
    },
    escalate: (o: { readonly tool: string; readonly input: unknown; readonly seconds: number }) =>
      escalate(o.tool, o.input, o.seconds, { session: session.id, task: "escalation" }, () => undefined),
  });
}

function tenantOf(session: Session): { tenant?: string } {
  const t = tenantFor(session.capability, undefined);
  return t === null ? {} : { tenant: t };
}

function endedError(id: string, status: TaskStatus): Error {
  return status === "timed-out"
    ? new TaskTimedOut(`task ${id} has timed out; its tools are dead`)
    : new TaskCancelled(`task ${id} has ended (${status}); its tools are dead`);
}

/**
 * The first critical tool a plan's needs call, if any. Needs are flat: a
 * sub-tool's needs (from subToolNeeds) include its own sub-tools' calls, so
 * this sees critical tools at any depth.
 */
function criticalReachedBy(plan: CallPlan, critical: ReadonlySet<string>): string | undefined {
  for (const need of plan.needs) {
    if (need.action === "tool.call" && critical.has(need.tool)) return need.tool;
  }
  return undefined;
}

function withoutCritical(grant: Grant, critical: ReadonlySet<string>): Grant {
  if (critical.size === 0 || grant.tools === undefined) return grant;
  return { ...grant, tools: grant.tools.filter((t) => !critical.has(t)) };
}

function checkSeconds(seconds: number): void {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_SECONDS) {
    throw new InvalidInput(`seconds must be a number above 0 and at most ${MAX_SECONDS}, got ${String(seconds)}`);
  }
}

function readCritical(c: CriticalOptions | undefined): { tools: ReadonlySet<string>; policy: CriticalOptions["policy"]; seconds: number } {
  if (c === undefined) return { tools: new Set(), policy: () => false, seconds: DEFAULT_CRITICAL_SECONDS };
  if (!Array.isArray(c.tools) || !c.tools.every((t) => typeof t === "string")) throw new InvalidInput("critical.tools must be an array of tool names");
  if (typeof c.policy !== "function") throw new InvalidInput("critical.policy must be a function approving one call");
  const seconds = c.seconds ?? DEFAULT_CRITICAL_SECONDS;
  checkSeconds(seconds);
  return { tools: new Set(c.tools), policy: c.policy, seconds };
}

function readSpec<T>(spec: SubtaskSpec<T>): SubtaskSpec<T> {
  if (typeof spec.name !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(spec.name)) {
    throw new InvalidInput(`subtask name must be 1 to 64 letters, digits, _, . or -; got ${JSON.stringify(spec.name)}`);
  }
  const grant: unknown = spec.grant;
  if (typeof grant !== "object" || grant === null) throw new InvalidInput(`subtask ${spec.name}: grant must be a Grant`);
  if (!Number.isInteger(spec.timeoutMs) || spec.timeoutMs < 1 || spec.timeoutMs > MAX_SECONDS * 1000) {
    throw new InvalidInput(`subtask ${spec.name}: timeoutMs must be a whole number of milliseconds from 1 to ${MAX_SECONDS * 1000}`);
  }
  if (typeof spec.run !== "function") throw new InvalidInput(`subtask ${spec.name}: run must be a function of the task context`);
  return spec;
}
