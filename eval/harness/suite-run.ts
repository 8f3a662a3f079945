import { createRecorder, type Recorder } from "./recorder.ts";
import { runOnce, type Mode, type RunResult } from "./run.ts";
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
  readonly modes: Partial<Record<Mode, ModeReport>>;
  readonly runs: readonly RunResult[];
}

export interface SuiteRunOptions {
  readonly modes?: readonly Mode[];
  /** Only these user tasks (by id); default all. */
  readonly userTasks?: readonly string[];
  /** Only these injection tasks (by id); default all. */
  readonly injectionTasks?: readonly string[];
  readonly onRun?: (run: RunResult) => void;
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
    for (const mode of modes) {
      for (const task of userTasks) keep(await runOnce(env, recorder, suite, task, null, mode));
      for (const task of userTasks) {
        for (const injection of injectionTasks) keep(await runOnce(env, recorder, suite, task, injection, mode));
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
    modes: Object.fromEntries(modes.map((m) => [m, summarize(runs.filter((r) => r.mode === m), injectionTasks)])),
    runs,
  };
}

const fraction = (runs: readonly RunResult[], test: (r: RunResult) => boolean): Fraction => ({ count: runs.filter(test).length, of: runs.length });

function summarize(runs: readonly RunResult[], injectionTasks: readonly { id: string; class: AttackClass; goal: string }[]): ModeReport {
  const clean = runs.filter((r) => r.injectionTask === null);
  const attacked = runs.filter((r) => r.injectionTask !== null);
  return {
    utilityWithoutAttack: fraction(clean, (r) => r.utility),
    utilityUnderAttack: fraction(attacked, (r) => r.utility),
    attackSuccess: fraction(attacked, (r) => r.attackSucceeded === true),
    exposed: fraction(attacked, (r) => r.exposed),
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
  if (!r.exposed) return "never read by the agent";
  const first = r.refused[0];
  if (first === undefined) return "no refusal: the calls had no effect";
  if (first.denial !== null) return `${first.denial.code} at ${first.denial.link}, ${first.denial.rule} rule`;
  return `${first.code}: ${first.message.slice(0, 120)}`;
}
