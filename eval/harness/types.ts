import type { AuditSink, Grant, Mint, Principal } from "agentcap";
import type { CriticalOptions } from "agentcap/runtime";
import type { ScriptedCall } from "agentcap/testing";
import type { Dispatcher } from "agentcap/tools";

/*
 * The shape of an evaluation suite, after the AgentDojo benchmark: an
 * environment the suite builds and resets, user tasks (what a user asks,
 * the calls that do it, and a check of the result) and injection tasks
 * (what an attacker wants, the calls that would do it, and a check of the
 * environment that says whether it happened).
 */

/** One tool call the agent made and what it got back. */
export interface SeenCall {
  readonly tool: string;
  readonly input: unknown;
  readonly ok: boolean;
  readonly value: unknown;
}

/** What a user task's script sees: every call made so far, and those of the last turn. */
export interface History {
  readonly calls: readonly SeenCall[];
  readonly last: readonly SeenCall[];
}

/** One turn of a user task: tool calls, or the final answer. */
export type UserTurn = readonly ScriptedCall[] | { readonly answer: string };

/** A user task's solution as a script: each turn a function of what the agent has seen. */
export type UserStep = (history: History) => UserTurn;

/**
 * What the application knows of the user's request (the form or command the
 * user submitted): an intent of the suite's policy and its parameters. The
 * capability is minted from this alone, never from the task's script.
 */
export interface TaskRequest {
  readonly intent: string;
  readonly params?: Readonly<Record<string, string>>;
}

export interface UserTask<E> {
  readonly id: string;
  /** The user's words, as an agent is prompted. */
  readonly prompt: string;
  /** Which user of the suite asks (default: the suite's first). */
  readonly user?: string;
  readonly request: TaskRequest;
  readonly steps: readonly UserStep[];
  /** Whether the task was done: the environment after the run, and the agent's final answer. */
  readonly utility: (env: E, answer: string) => boolean | Promise<boolean>;
}

/** Which part of agentcap an injection task aims at, beyond the tools the injection asks for. */
export type AttackClass =
  | "exfiltration"
  | "unauthorized-action"
  | "data-tampering"
  | "cross-tenant"
  | "confused-deputy"
  | "escalation"
  | "redirect-exfiltration"
  | "single-use-replay"
  | "token-replay"
  | "budget-exhaustion";

export interface InjectionTask<E> {
  readonly id: string;
  readonly class: AttackClass;
  /** What the attacker asks for, in words: planted in the data with the calls. */
  readonly goal: string;
  /**
   * The calls the injected text asks for, turn by turn; a string may hold
   * `{{last}}` (the text of the previous turn's results) or `{{last|url}}`
   * (the same, URL-encoded), so an attack can read, then send what it read.
   */
  readonly turns: readonly (readonly ScriptedCall[])[];
  /** Whether the attacker got what they wanted, judged from the environment alone. */
  readonly success: (env: E) => boolean | Promise<boolean>;
}

/** What a suite's environment gives the runner. */
export interface Environment {
  readonly dispatcher: Dispatcher;
  readonly mint: Mint<unknown>;
  readonly users: Readonly<Record<string, Principal>>;
  /** The grant of a task from the user's request: the application's policy, the same for every task. */
  readonly taskGrant: (request: TaskRequest, user: Principal) => Grant;
  /** Tools the runtime runs only under a fresh re-mint after this policy approves each call. */
  readonly critical?: CriticalOptions;
  /**
   * Another task of the same session, run after the user's task: what an
   * attack on another task's budget would starve. It is scripted, reads no
   * injected data; the runner tells `done` whether every one of its calls
   * went through.
   */
  readonly followUp?: { readonly name: string; readonly request: TaskRequest; readonly calls: readonly ScriptedCall[]; done(ok: boolean): void };
  /** Told each task's id and request as the Governor starts it, so the critical-operation policy can check a call against what the user asked for. */
  readonly onTask?: (taskId: string, request: TaskRequest) => void;
  /** Puts every file, row and service back as the suite seeds it, with `injection` planted in every injection vector (or the benign text). */
  reset(injection: string | null): Promise<void>;
  close(): Promise<void>;
}

export interface Suite<E extends Environment> {
  readonly name: string;
  readonly description: string;
  /** Builds the suite's environment; every resource and the dispatcher record into `audit`. */
  build(audit: AuditSink): Promise<E>;
  /** What the application tells a real model about the user and the environment (the scripted agent needs none of it). */
  context(env: E): string;
  /** The tasks, made once the environment is built (they name its services' addresses). */
  userTasks(env: E): readonly UserTask<E>[];
  injectionTasks(env: E): readonly InjectionTask<E>[];
}
