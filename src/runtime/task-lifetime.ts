import { TaskCancelled, TaskTimedOut, type Revocable } from "../kernel/index.js";

/** How a subtask ended. */
export type TaskStatus = "running" | "completed" | "failed" | "timed-out" | "cancelled";

/**
 * One subtask's lifetime: it runs until it completes, fails, is cancelled or
 * times out, whichever comes first, and ending it (once) revokes its lease
 * and everything registered with `onEnd`, and aborts its signal.
 */
export interface TaskLifetime<T> {
  readonly status: TaskStatus;
  /** Settles when the task ends: its value, its error, TaskTimedOut or TaskCancelled. */
  readonly result: Promise<T>;
  /** Aborted with TaskTimedOut or TaskCancelled (or the task's error) when it ends. */
  readonly signal: AbortSignal;
  /** Runs `cleanup` when the task ends (at once if it has). */
  onEnd(cleanup: () => void): void;
  /** The error for work that arrives after the task ended, saying how it ended. */
  ended(): Error;
  /** Runs `work` on a later turn and ends the task with its outcome. */
  start(work: () => Promise<T>): void;
  cancel(reason: string): void;
}

/** Starts the clock of task `id`, whose capabilities are `lease`: at `timeoutMs` it ends as timed out. */
export function startTaskLifetime<T>(id: string, lease: Revocable<unknown>, timeoutMs: number): TaskLifetime<T> {
  const cleanups: (() => void)[] = [];
  const controller = new AbortController();
  let status: TaskStatus = "running";
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

  return {
    get status() {
      return status;
    },
    result,
    signal: controller.signal,
    onEnd: (cleanup) => {
      if (status === "running") cleanups.push(cleanup);
      else cleanup();
    },
    ended: () =>
      status === "timed-out"
        ? new TaskTimedOut(`task ${id} has timed out; its tools are dead`)
        : new TaskCancelled(`task ${id} has ended (${status}); its tools are dead`),
    start: (work) => {
      // Started on a later turn, so work that throws synchronously is still a failed task, not a throw from spawn.
      void Promise.resolve()
        .then(work)
        .then(
          (value) => {
            if (end("completed", `task ${id} completed`, null)) settle?.resolve(value);
          },
          (error: unknown) => {
            if (end("failed", `task ${id} failed`, error)) settle?.reject(error);
          },
        );
    },
    cancel: (reason) => {
      const error = new TaskCancelled(`task ${id} was cancelled: ${reason}`);
      if (end("cancelled", reason, error)) settle?.reject(error);
    },
  };
}
