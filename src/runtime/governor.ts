import { randomUUID } from "node:crypto";
import {
  clockTime,
  InvalidInput,
  isCapability,
  narrow,
  restrict,
  SessionClosed,
  type Capability,
  type Grant,
} from "../kernel/index.js";
import { caretaker } from "../kernel/internal.js";
import type { Dispatcher } from "../tools/index.js";
import {
  checkSeconds,
  criticalReachedBy,
  criticalRoutes,
  MAX_SECONDS,
  oneCallOf,
  readCritical,
  withoutCritical,
  type CriticalOptions,
} from "./critical-calls.js";
import type { RoutedTool } from "./executor.js";
import type { Session } from "./session.js";
import { startTaskLifetime, type TaskStatus } from "./task-lifetime.js";

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

/** Creates the Governor of a session; throws InvalidInput for a bad option. */
export function createGovernor(options: GovernorOptions): Governor {
  const { session, dispatcher } = options;
  if (!isCapability(session.capability)) throw new InvalidInput("a Governor needs an open Session");
  const critical = readCritical(options.critical);

  const escalate = async (tool: string, input: unknown, seconds: number, labels: Record<string, string>, onRevoke: (revoke: () => void) => void) => {
    checkSeconds(seconds);
    if (critical.tools.has(tool)) throw new InvalidInput(`tool ${tool} is critical: it runs only under a fresh re-mint after the policy check, never by escalation`);
    if (session.closed) throw new SessionClosed(`session ${session.id} is closed`);
    const plan = await dispatcher.plan(tool, input, session.capability);
    const reached = criticalReachedBy(plan, critical.tools);
    if (reached !== undefined) {
      throw new InvalidInput(
        `tool ${tool} reaches critical tool ${reached} through its needs (as a sub-tool call); it runs only under a fresh re-mint after the policy check, never by escalation`,
      );
    }
    const lease = caretaker(oneCallOf(session.capability, plan, seconds), labels);
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
    const lease = caretaker(restrict(base, { expiresAt: Math.floor(clockTime(base) + timeoutMs) }), labels);
    const lifetime = startTaskLifetime<T>(id, lease, timeoutMs);
    const criticalTools = criticalRoutes({ session, dispatcher, critical, taskId: id, grant, capability: lease.capability, labels, lifetime });

    const context: TaskContext = Object.freeze({
      id,
      sessionId: session.id,
      capability: lease.capability,
      signal: lifetime.signal,
      dispatcher,
      criticalTools: Object.freeze(criticalTools),
      escalate: (tool: string, input: unknown, seconds: number) => {
        if (lifetime.status !== "running") return Promise.reject(lifetime.ended());
        return escalate(tool, input, seconds, labels, (revoke) => {
          lifetime.onEnd(revoke);
        });
      },
    });
    lifetime.start(() => run(context));

    return Object.freeze({
      id,
      name,
      result: lifetime.result,
      get status() {
        return lifetime.status;
      },
      cancel: (reason = "cancelled by its governor") => {
        lifetime.cancel(reason);
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
