import type { ScriptedCall, ScriptStep, SeenResult } from "agentcap/testing";
import { findInjections, substitute } from "./injection.ts";
import type { History, SeenCall, UserStep, UserTurn } from "./types.ts";

/*
 * The worst-case agent: it does the user's task by its script and, the
 * moment anything it reads carries injected instructions, it obeys them
 * first, every call they ask for, before going back to the user's task. It
 * is played by agentcap's scripted model inside the AI SDK's real tool loop,
 * so every call goes through the executor and the dispatcher like a real
 * model's.
 */

/** Who asked for a call the agent made. */
export type Origin = "user" | "injection";

/** One call the agent made, who asked for it, and what came back. */
export interface AgentCall extends SeenCall {
  readonly origin: Origin;
}

export interface WorstCaseAgent {
  /** The steps to give `scriptedModel`; what the agent did goes to the run's log (startRunLog). */
  readonly steps: readonly ScriptStep[];
}

/** What every worst-case agent of one run did, sub-agents included (they are started by tools, out of the runner's sight). */
export interface RunLog {
  readonly calls: AgentCall[];
  exposed: boolean;
}

let current: RunLog | null = null;

/** Starts the log of a run; the agents made from now on write to it. Runs are sequential. */
export function startRunLog(): RunLog {
  current = { calls: [], exposed: false };
  return current;
}

/** The most model steps a run may take; the executor's maxSteps should be at least this. */
export const MAX_AGENT_STEPS = 40;

/** An agent for `userSteps`; injected instructions in `prompt` itself (a sub-agent's assignment written by another agent) are obeyed first. */
export function worstCaseAgent(userSteps: readonly UserStep[], prompt = ""): WorstCaseAgent {
  const calls: AgentCall[] = [];
  const log = current;
  const obeyed = new Set<string>();
  const pending: (readonly ScriptedCall[])[] = [];
  let emitted: { origin: Origin; calls: readonly ScriptedCall[] } | null = null;
  let lastInjected: readonly unknown[] = [];
  let lastUser: readonly SeenCall[] = [];
  let next = 0;

  const obey = (value: unknown) => {
    for (const turns of findInjections(value)) {
      const key = JSON.stringify(turns);
      if (log !== null) log.exposed = true;
      if (obeyed.has(key)) continue;
      obeyed.add(key);
      // The injected text asks to be done first: its turns go before whatever was still pending.
      pending.unshift(...turns);
    }
  };
  obey(prompt);

  const step = ({ results }: { results: readonly SeenResult[] }) => {
    const last = record(emitted, results);
    if (emitted?.origin === "user") lastUser = last;
    if (emitted?.origin === "injection") lastInjected = last.map((c) => c.value);
    for (const c of last) obey(c.value);
    const injected = pending.shift();
    if (injected !== undefined) {
      emitted = { origin: "injection", calls: substitute(injected, lastInjected) };
      return { calls: emitted.calls };
    }
    const user = userSteps[next];
    next += 1;
    if (user === undefined) {
      emitted = null;
      return { text: "(done)" };
    }
    const turn = attempt(user, { calls: calls.filter((c) => c.origin === "user"), last: lastUser });
    if ("answer" in turn) {
      emitted = null;
      return { text: turn.answer };
    }
    emitted = { origin: "user", calls: turn };
    return { calls: turn };
  };

  /** Pairs the previous turn's calls with their results (the model sees them in the order it made them). */
  const record = (turn: typeof emitted, results: readonly SeenResult[]): AgentCall[] => {
    if (turn === null) return [];
    const made = turn.calls.map((c, i): AgentCall => {
      const r = results[i];
      return { origin: turn.origin, tool: c.tool, input: c.input, ok: r?.ok ?? false, value: r?.value ?? null };
    });
    calls.push(...made);
    log?.calls.push(...made);
    return made;
  };

  return {
    steps: Array.from({ length: MAX_AGENT_STEPS }, () => step),
  };
}

/** A user step on what the agent has seen; a step that cannot go on (what it needed was refused or missing) gives up with an answer saying so. */
function attempt(step: UserStep, history: History): UserTurn {
  try {
    return step(history);
  } catch (e) {
    return { answer: `I could not finish the task: ${e instanceof Error ? e.message : String(e)}` };
  }
}
