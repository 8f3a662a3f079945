import { spawn } from "node:child_process";
import { InvalidInput, LimitExceeded } from "../../kernel/index.js";
import type { ExecLimits } from "./input.js";
import { watchMemory } from "./memory.js";
import { freshBytes } from "../fresh-bytes.js";

/*
 * Runs one already-authorized program and supervises it. The program is the
 * leader of a new process group, and every way a run can end early (time,
 * output or memory limit, revocation, expiry) kills the whole group with
 * SIGKILL, so helpers it started die with it. When the program exits on its
 * own, the rest of its group is killed too: authority was given for this call
 * and nothing it started outlives it. A descendant that leaves the group
 * (setsid) escapes that kill; if it keeps the output pipes open, the time
 * limit still ends the call.
 */

/*
 * Variables Node's spawn copies from process.env into any child environment
 * that does not hold them as its own keys (NODE_V8_COVERAGE everywhere, the
 * rest on z/OS). An own key whose value is undefined stops the copy and is
 * itself left out, so the child gets exactly the variables of the job.
 */
const COPIED_BY_SPAWN = [
  "NODE_V8_COVERAGE",
  "_BPXK_AUTOCVT",
  "_CEE_RUNOPTS",
  "_TAG_REDIR_ERR",
  "_TAG_REDIR_IN",
  "_TAG_REDIR_OUT",
  "STEPLIB",
  "LIBPATH",
  "_EDC_SIG_DFLT",
  "_EDC_SUSV3",
] as const;

/** `env` with every variable spawn would copy from process.env, and `env` does not name, held off. */
function exactEnv(env: Readonly<Record<string, string>>): Record<string, string | undefined> {
  const out = Object.create(null) as Record<string, string | undefined>;
  for (const name of COPIED_BY_SPAWN) out[name] = undefined;
  for (const name of Object.keys(env)) out[name] = env[name];
  return out;
}

/** What to run, fully canonicalized and authorized. */
export interface Job {
  readonly program: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
  readonly input: Uint8Array | null;
  readonly limits: ExecLimits;
}

/** How a program ended, and everything it wrote. */
export interface Exit {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
}

/**
 * Spawns `job` without a shell and resolves with its exit once it and its
 * output pipes are closed. Rejects with LimitExceeded (timeoutMs,
 * maxOutputBytes, maxMemoryBytes), with `stop.reason` when `stop` aborts, or
 * with InvalidInput when the program cannot be started; in every rejection
 * the process group has already been sent SIGKILL and the program has exited.
 */
export function runJob(job: Job, stop: AbortSignal): Promise<Exit> {
  return new Promise<Exit>((resolve, reject) => {
    const child = (() => {
      try {
        return spawn(job.program, job.args, {
          cwd: job.cwd,
          env: exactEnv(job.env),
          shell: false,
          // A new process group (and session), so a kill reaches everything the program started.
          detached: true,
          stdio: ["pipe", "pipe", "pipe"],
        });
      } catch (e) {
        throw new InvalidInput(`program ${job.program} could not be started: ${(e as Error).message}`);
      }
    })();
    const { stdout, stderr, stdin } = child;
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let failure: Error | null = null;
    let settled = false;

    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // ESRCH: every process of the group has already gone.
      }
    };
    const fail = (reason: Error) => {
      failure ??= reason;
      killGroup();
      // Closing our ends lets the run finish even if an escaped descendant holds the pipes open.
      stdout.destroy();
      stderr.destroy();
    };
    const timeout = setTimeout(() => {
      fail(new LimitExceeded(`program ${job.program} ran longer than its time limit of ${job.limits.timeoutMs} ms and was killed`, "timeoutMs"));
    }, job.limits.timeoutMs);
    // The authority watch always aborts with its Revoked or Expired error.
    const onStop = () => { fail(stop.reason as Error); };
    stop.addEventListener("abort", onStop);
    const limit = job.limits.maxMemoryBytes;
    const stopMemory =
      limit === null || child.pid === undefined
        ? () => undefined
        : watchMemory(child.pid, limit, (bytes) => {
            fail(new LimitExceeded(`program ${job.program} used ${bytes} bytes of memory, over its limit of ${limit}, and was killed`, "maxMemoryBytes"));
          });

    const settle = (result: Exit | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timeout);
      stopMemory();
      stop.removeEventListener("abort", onStop);
      if (failure !== null) reject(failure);
      else if (result !== null) resolve(result);
    };
    const collect = (chunks: Uint8Array[], chunk: Uint8Array) => {
      chunks.push(chunk);
      if (chunks === out) outBytes += chunk.length;
      else errBytes += chunk.length;
      if (outBytes + errBytes > job.limits.maxOutputBytes) {
        fail(new LimitExceeded(`program ${job.program} wrote more than its output limit of ${job.limits.maxOutputBytes} bytes and was killed`, "maxOutputBytes"));
      }
    };
    stdout.on("data", (chunk: Uint8Array) => { collect(out, chunk); });
    stderr.on("data", (chunk: Uint8Array) => { collect(err, chunk); });

    child.on("error", (e) => {
      // Without a pid the program never started and no exit or close will follow.
      if (child.pid !== undefined) return;
      failure ??= new InvalidInput(`program ${job.program} could not be started: ${e.message}`);
      stdout.destroy();
      stderr.destroy();
      settle(null);
    });
    child.on("exit", killGroup);
    child.on("close", (exitCode, signal) => {
      settle({ exitCode, signal, stdout: freshBytes(out, outBytes), stderr: freshBytes(err, errBytes) });
    });

    if (stop.aborted) onStop();
    // The program may exit without reading its input; the resulting EPIPE is not an error of the run.
    stdin.on("error", () => undefined);
    // Without input, standard input is closed at once: the program reads end-of-file.
    if (job.input === null) stdin.end();
    else stdin.end(job.input);
  });
}
