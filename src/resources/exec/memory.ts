import { readFile } from "node:fs/promises";

/*
 * Node cannot set a resource limit (setrlimit) on a child without going
 * through a shell or a helper program such as prlimit, so the memory limit is
 * enforced by watching instead: the program's resident set size is read from
 * /proc/<pid>/status every POLL_MS and the program is killed once it is over
 * the limit. Consequences, documented for users of `maxMemoryBytes`: a spike
 * shorter than one poll can go unseen, and only the program itself is
 * measured, not processes it starts. Linux only.
 */

const POLL_MS = 10;
const VM_RSS = /^VmRSS:\s+(\d+) kB$/m;

/** Whether this platform can enforce `maxMemoryBytes`. */
export const canWatchMemory = process.platform === "linux";

async function residentBytes(pid: number): Promise<number | null> {
  try {
    const match = VM_RSS.exec(await readFile(`/proc/${pid}/status`, "latin1"));
    return match?.[1] === undefined ? null : Number(match[1]) * 1024;
  } catch {
    // The process has exited (ENOENT) between polls: nothing left to measure.
    return null;
  }
}

/**
 * Calls `onExceeded` once with the resident size seen, as soon as process
 * `pid` is seen using more than `limit` bytes; returns the function that stops
 * watching.
 */
export function watchMemory(pid: number, limit: number, onExceeded: (bytes: number) => void): () => void {
  let stopped = false;
  let polling = false;
  const poll = async () => {
    if (polling) return;
    polling = true;
    const bytes = await residentBytes(pid);
    polling = false;
    if (!stopped && bytes !== null && bytes > limit) {
      stop();
      onExceeded(bytes);
    }
  };
  const interval = setInterval(() => void poll(), POLL_MS);
  const stop = () => {
    stopped = true;
    clearInterval(interval);
  };
  void poll();
  return stop;
}
