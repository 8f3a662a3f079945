import { randomUUID } from "node:crypto";
import {
  CapabilityDenied,
  check,
  clockTime,
  InvalidInput,
  narrow,
  restrict,
  type Capability,
  type Grant,
  type MintRecord,
  type Request,
} from "../kernel/index.js";
import { caretaker } from "../kernel/internal.js";
import type { CallPlan, Dispatcher } from "../tools/index.js";
import { tenantFor } from "../tools/internal.js";
import type { RoutedTool } from "./executor.js";
import type { Session } from "./session.js";
import type { TaskLifetime } from "./task-lifetime.js";

/*
 * Critical operations: a task's own capability never reaches them. Each call
 * is approved by the application's policy, then runs under a fresh re-mint
 * narrowed to exactly that call, for a few seconds, and dies with the task.
 */

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

/** Critical options as the Governor holds them. */
export interface Critical {
  readonly tools: ReadonlySet<string>;
  readonly policy: CriticalOptions["policy"];
  readonly seconds: number;
}

const DEFAULT_CRITICAL_SECONDS = 30;
/** The longest a task, an escalation or a re-minted call may last. */
export const MAX_SECONDS = 24 * 3600;

/** Throws InvalidInput unless `seconds` is a duration the Governor grants. */
export function checkSeconds(seconds: number): void {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_SECONDS) {
    throw new InvalidInput(`seconds must be a number above 0 and at most ${MAX_SECONDS}, got ${String(seconds)}`);
  }
}

/** Validates the Governor's critical options; none means no tool is critical. */
export function readCritical(c: CriticalOptions | undefined): Critical {
  if (c === undefined) return { tools: new Set(), policy: () => false, seconds: DEFAULT_CRITICAL_SECONDS };
  if (!Array.isArray(c.tools) || !c.tools.every((t) => typeof t === "string")) throw new InvalidInput("critical.tools must be an array of tool names");
  if (typeof c.policy !== "function") throw new InvalidInput("critical.policy must be a function approving one call");
  const seconds = c.seconds ?? DEFAULT_CRITICAL_SECONDS;
  checkSeconds(seconds);
  return { tools: new Set(c.tools), policy: c.policy, seconds };
}

/** `grant` without its critical tools. */
export function withoutCritical(grant: Grant, critical: ReadonlySet<string>): Grant {
  if (critical.size === 0 || grant.tools === undefined) return grant;
  return { ...grant, tools: grant.tools.filter((t) => !critical.has(t)) };
}

/**
 * The first critical tool a plan's needs call, if any. Needs are flat: a
 * sub-tool's needs (from subToolNeeds) include its own sub-tools' calls, so
 * this sees critical tools at any depth.
 */
export function criticalReachedBy(plan: CallPlan, critical: ReadonlySet<string>): string | undefined {
  for (const need of plan.needs) {
    if (need.action === "tool.call" && critical.has(need.tool)) return need.tool;
  }
  return undefined;
}

/** `base` narrowed to exactly one call of `plan` (its tool.call and its needs, once each), for `seconds`. */
export function oneCallOf(base: Capability, plan: CallPlan, seconds: number): Capability {
  const grant: Grant = { ...plan.grant, tools: [plan.tool.name, ...(plan.grant.tools ?? [])] };
  return restrict(narrow(base, grant), { expiresAt: Math.floor(clockTime(base) + seconds * 1000), maxUses: 1 + plan.needs.length });
}

/** What routing one task's critical tools needs from the Governor. */
export interface CriticalTask {
  readonly session: Session;
  readonly dispatcher: Dispatcher;
  readonly critical: Critical;
  readonly taskId: string;
  /** The task's grant: a re-mint is narrowed by it too, so the call never exceeds what the task was given. */
  readonly grant: Grant;
  /** The task's own capability, which never reaches a critical tool. */
  readonly capability: Capability;
  readonly labels: Readonly<Record<string, string>>;
  readonly lifetime: TaskLifetime<unknown>;
}

/**
 * The critical tools the task's grant names and the session reaches, each
 * run through the policy and a fresh re-mint: what the task's agent is shown
 * besides its own catalog.
 */
export function criticalRoutes(t: CriticalTask): RoutedTool[] {
  const { session, dispatcher, critical, taskId, lifetime } = t;
  const tenant = tenantFor(session.capability, undefined);
  const running = () => lifetime.status === "running";

  /**
   * A refused critical call is still an invocation: it is dispatched with
   * the task's own capability, which never reaches a critical tool, so the
   * dispatcher denies it and records the denial.
   */
  const refuse = async (tool: string, input: unknown, why: string): Promise<unknown> => {
    try {
      return await dispatcher.call(tool, input, t.capability);
    } catch (e) {
      if (e instanceof CapabilityDenied) throw new CapabilityDenied(`critical tool ${tool} needs a fresh capability and ${why}; ${e.message}`, e.details);
      throw e;
    }
  };

  /** A critical call: policy check, fresh re-mint, a capability for exactly this call, then dispatch. */
  const call = async (tool: string, input: unknown): Promise<unknown> => {
    if (!running()) throw lifetime.ended();
    const plan = await dispatcher.plan(tool, input, session.capability);
    const approved: unknown = await critical.policy(Object.freeze({ principal: session.principal, sessionId: session.id, taskId, tool, input: plan.input, needs: plan.needs }));
    if (approved !== true) return refuse(tool, input, "the critical-operation policy refused it");
    // The policy may take its time; the task may have ended meanwhile.
    if (!running()) throw lifetime.ended();
    let fresh: Capability;
    try {
      fresh = session.remint({ requestId: `${taskId}:${tool}:${randomUUID().slice(0, 8)}` });
    } catch (e) {
      if (e instanceof CapabilityDenied) return refuse(tool, input, `the mint refused a fresh capability (${e.message})`);
      throw e;
    }
    const once = caretaker(oneCallOf(narrow(fresh, t.grant), plan, critical.seconds), t.labels);
    lifetime.onEnd(() => {
      once.revoke(`task ${taskId} has ended`);
    });
    try {
      return await dispatcher.call(tool, input, once.capability);
    } finally {
      once.revoke(`the critical call to ${tool} has returned`);
    }
  };

  return [...critical.tools]
    .filter((name) => t.grant.tools?.includes(name) === true && dispatcher.tool(name) !== undefined)
    .filter((name) => check(session.capability, { action: "tool.call", tool: name, ...(tenant === null ? {} : { tenant }) }).allowed)
    .map((name): RoutedTool => {
      const tool = dispatcher.tool(name);
      if (tool === undefined) throw new InvalidInput(`no tool named ${name}`);
      return {
        entry: Object.freeze({ name: tool.name, description: tool.description, inputSchema: tool.inputSchema }),
        call: (input) => call(name, input),
      };
    });
}
