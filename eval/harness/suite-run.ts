import { createRecorder, type Recorder } from "./recorder.ts";
import { runOnce, type AgentModel, type Mode, type RunResult, type ToolRun } from "./run.ts";
import type { AttackClass, Environment, InjectionTask, Suite, UserTask } from "./types.ts";

/*
 * A suite's whole run, AgentDojo style: every user task without attack,
 * then every (user task, injection task) pair with the injection planted,
 * in each mode; and what the figures are.
 */

export interface Fraction {
  readonly count: number;
  readonly of: number;
}

export interface InjectionReport {
  readonly id: string;
  readonly class: AttackClass;
  readonly goal: string;
  readonly succeeded: Fraction;
  /** For each run where the attack failed, what stopped it, counted. */
  readonly stoppedBy: Readonly<Record<string, number>>;
}

export interface ModeReport {
  readonly utilityWithoutAttack: Fraction;
  readonly utilityUnderAttack: Fraction;
  readonly attackSuccess: Fraction;
  /** Runs in which the agent read the injected text. */
  readonly exposed: Fraction;
  readonly injections: readonly InjectionReport[];
  /** User tasks not done without attack: a sign the policy is too narrow for them. */
  readonly failedUserTasks: readonly string[];
}

export interface SuiteReport {
  readonly suite: string;
  readonly description: string;
  readonly userTasks: number;
  readonly injectionTasks: number;
  /** By the capability the agent held: "agentcap" and "undefended" for the scripted worst case, "<mode> · <model>" for a real model. */
  readonly modes: Readonly<Record<string, ModeReport>>;
  /** Every tool the agents called, by where its handler ran (the audit events' account). */
  readonly toolCode: Readonly<Record<string, ToolRun>>;
  readonly runs: readonly RunResult[];
}

export interface SuiteRunOptions {
  readonly modes?: readonly Mode[];
  /** Only these user tasks (by id); default all. */
  readonly userTasks?: readonly string[];
  /** Only these injection tasks (by id); default all. */
  readonly injectionTasks?: readonly string[];
  readonly onRun?: (run: RunResult) => void;
  /** Also run every task with this real model, in each mode. */
  readonly model?: AgentModel;
  /** With a model: false runs the model alone, without the scripted worst case. */
  readonly scripted?: boolean;
}

export async function runSuite<E extends Environment>(suite: Suite<E>, options: SuiteRunOptions = {}): Promise<SuiteReport> {
  const pick = <T extends { id: string }>(all: readonly T[], ids: readonly string[] | undefined): readonly T[] => {
    if (ids === undefined) return all;
    const unknown = ids.filter((id) => !all.some((t) => t.id === id));
    if (unknown.length > 0) throw new Error(`suite ${suite.name} has no task ${unknown.join(", ")}`);
    return all.filter((t) => ids.includes(t.id));
  };
  const modes = options.modes ?? ["agentcap", "undefended"];
  const recorder: Recorder = createRecorder();
  const env = await suite.build(recorder.sink);
  let userTasks: readonly UserTask<E>[];
  let injectionTasks: readonly InjectionTask<E>[];
  try {
    userTasks = pick(suite.userTasks(env), options.userTasks);
    injectionTasks = pick(suite.injectionTasks(env), options.injectionTasks);
  } catch (e) {
    await env.close();
    throw e;
  }
  const runs: RunResult[] = [];
  const keep = (r: RunResult) => {
    runs.push(r);
    options.onRun?.(r);
  };
  try {
    const agents = options.model === undefined ? [null] : options.scripted === false ? [options.model] : [null, options.model];
    for (const real of agents) {
      for (const mode of modes) {
        for (const task of userTasks) keep(await runOnce(env, recorder, suite, task, null, mode, real));
        for (const task of userTasks) {
          for (const injection of injectionTasks) keep(await runOnce(env, recorder, suite, task, injection, mode, real));
        }
      }
    }
  } finally {
    await env.close();
  }
  return {
    suite: suite.name,
    description: suite.description,
    userTasks: userTasks.length,
    injectionTasks: injectionTasks.length,
    modes: Object.fromEntries(
      [...new Set(runs.map((r) => modeKey(r)))].map((key) => [key, summarize(runs.filter((r) => modeKey(r) === key), injectionTasks)]),
    ),
    toolCode: Object.fromEntries(runs.flatMap((r) => Object.entries(r.toolCode)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    runs,
  };
}

/** How a run's mode is reported: the capability held, and the model when it was not the scripted worst case. */
export const modeKey = (r: Pick<RunResult, "mode" | "agent">): string => (r.agent === "scripted" ? r.mode : `${r.mode} · ${r.agent}`);

const fraction = (runs: readonly RunResult[], test: (r: RunResult) => boolean): Fraction => ({ count: runs.filter(test).length, of: runs.length });

function summarize(runs: readonly RunResult[], injectionTasks: readonly { id: string; class: AttackClass; goal: string }[]): ModeReport {
  const clean = runs.filter((r) => r.injectionTask === null);
  const attacked = runs.filter((r) => r.injectionTask !== null);
  return {
    utilityWithoutAttack: fraction(clean, (r) => r.utility),
    utilityUnderAttack: fraction(attacked, (r) => r.utility),
    attackSuccess: fraction(attacked, (r) => r.attackSucceeded === true),
    exposed: fraction(
      attacked.filter((r) => r.exposed !== null),
      (r) => r.exposed === true,
    ),
    failedUserTasks: clean.filter((r) => !r.utility).map((r) => r.userTask),
    injections: injectionTasks.map(({ id, class: attackClass, goal }) => {
      const mine = attacked.filter((r) => r.injectionTask === id);
      const stoppedBy: Record<string, number> = {};
      for (const r of mine) {
        if (r.attackSucceeded === true) continue;
        const why = stopReason(r);
        stoppedBy[why] = (stoppedBy[why] ?? 0) + 1;
      }
      return { id, class: attackClass, goal, succeeded: fraction(mine, (r) => r.attackSucceeded === true), stoppedBy };
    }),
  };
}

/** What stopped an attack that failed: the first refusal of a call it asked for. */
export function stopReason(r: RunResult): string {
  if (r.exposed === false) return "never read by the agent";
  const first = r.refused[0];
  if (first === undefined) return "no refusal: the calls had no effect";
  if (first.denial !== null) return `${first.denial.code} at ${first.denial.link}, ${first.denial.rule} rule`;
  return `${first.code}: ${first.message.slice(0, 120)}`;
}
