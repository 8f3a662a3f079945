import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import {
  callerMessage,
  ForeignFailure,
  InvalidInput,
  narrow,
  NotACapability,
  SandboxStopped,
  SandboxTimeout,
  SandboxViolation,
  type Capability,
  type Grant,
  type SandboxStopReason,
} from "../kernel/index.js";
import { monotonicClock } from "../kernel/internal.js";
import type { ToolContext } from "../tools/index.js";
import type { CapabilityRef, HostError, HostMessage, ToolInfo, WorkerInit, WorkerMessage } from "./protocol.js";

/** Limits of one tool module's sandbox. */
export interface SandboxLimits {
  /**
   * Longest a call (its needs, or its run) may take. Past it the call fails
   * with SandboxTimeout and the other calls go on; only a sandbox that then
   * stops responding (a call stuck in a loop) is stopped and started afresh.
   */
  readonly timeoutMs: number;
  /** Longest starting the sandbox and evaluating the module may take. */
  readonly loadTimeoutMs: number;
  /** Ceiling of the sandbox's heap (V8 old generation), in MB. */
  readonly memoryMb: number;
}

/** A method of an endowed object: the capability first. */
export type RemoteMethod = (this: object, capability: Capability, ...args: unknown[]) => unknown;

/** A host object whose methods the sandbox may call, each with a capability first. */
export interface RemoteObject {
  readonly target: object;
  readonly methods: ReadonlyMap<string, RemoteMethod>;
}

/** An error of the tool's own, as far as it can leave the sandbox: its name and message, never the object or its stack. */
function namedError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/** What a tool threw that is not agentcap's: a ForeignFailure, whose cause carries the name and message the tool gave it. */
function toolFailure(tool: string, name: string, message: string): ForeignFailure {
  return new ForeignFailure(`tool ${tool} failed: ${name}: ${message}`, { cause: namedError(name, message) });
}

/** The worker next to this file, in whichever form (TypeScript source or compiled JavaScript) this file is. */
const WORKER_URL = new URL(`./worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** How many ended calls' capabilities are kept, so that a reference kept past its call meets the kernel's own Revoked. */
const ENDED_CALLS = 1024;

/** How many host errors are kept, so that one the tool lets through is rethrown as itself. */
const KEPT_ERRORS = 1024;

type Outcome = WorkerMessage & { t: "needs" | "done" };

/**
 * How long a sandbox has to answer a ping after one of its calls ran past
 * its time limit (at most the time limit itself): one that does not is stuck
 * (a loop that never yields), and is stopped.
 */
const WEDGED_AFTER_MS = 1_000;

/**
 * A sandbox lost (stopped because it stopped responding, crashed or ran out
 * of memory) more than this many times within RESTART_WINDOW_MS is not
 * started again until the oldest loss leaves the window: a tool that always
 * hangs or crashes cannot make the host spin starting sandboxes.
 */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

/** What happened to one tool module's sandbox so far: for operators, and for tests of its limits. */
export interface SandboxHealth {
  /** Sandboxes started (the first, and every restart). */
  readonly starts: number;
  /** Calls that ran past their time limit and failed with SandboxTimeout. */
  readonly timeouts: number;
  /** Sandboxes stopped, by why: stuck after a call's timeout, out of memory, crashed. */
  readonly stopped: { readonly timeout: number; readonly memory: number; readonly crash: number };
  /** Calls caught in a stopped sandbox before they had asked the host for anything, run again in a fresh one. */
  readonly rerun: number;
  /** Calls refused (SandboxStopped "restarts") because the sandbox was lost too often lately. */
  readonly refused: number;
}

/**
 * A host error kept for its original to be rethrown: `call` is the running
 * call whose capability (or context) the request used, null when that call
 * had returned; `lastRun` the last run started when the request came.
 */
interface KeptError {
  readonly error: unknown;
  readonly call: number | null;
  readonly lastRun: number;
}

/** What a run's handler acts with, once the dispatcher has authorized it. */
interface Authority {
  readonly capability: Capability;
  readonly context: ToolContext;
}

/** A promise with its settlers at hand; settled at most once. */
interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
}

function deferred<T>(): Deferred<T> {
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  // A run's steps may fail before anyone awaits them (a sandbox stopped mid-call); that is not an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/**
 * One call inside the sandbox. Started by `needs` (speculative: the handler
 * runs at once, its requests wait for `authority`) or by `run`. It is
 * claimed when the dispatcher runs the handler, abandoned when it does not.
 */
interface Run {
  readonly id: number;
  /** The worker running it: another one once it is run again after its first was stopped. */
  worker: Worker;
  readonly tool: string;
  readonly input: unknown;
  readonly tenant: string | null;
  /** How the call was started: `start` computes its needs first. */
  readonly kind: "start" | "run";
  /** Its time limit, once it is handed to a worker. */
  timer: NodeJS.Timeout | null;
  /** How many requests its worker had made of the host when the call was handed to it: none since means it has done nothing outside the sandbox. */
  seen: number;
  /** Whether its needs were reported (a call run again then runs its handler only). */
  needsReported: boolean;
  /** Whether it was run again already: a call is run again at most once. */
  rerun: boolean;
  /** Past its time limit while its sandbox was not answering a ping: it waits for the answer (or the sandbox's stop) to learn whether it was the one stuck. */
  parked: boolean;
  readonly needs: Deferred<Outcome>;
  readonly done: Deferred<Outcome>;
  readonly authority: Deferred<Authority>;
  state: "speculative" | "claimed" | "abandoned";
}

/**
 * One tool module's sandbox: a worker thread running it under SES, started
 * on first use and again after it was stopped. Calls are runs in it; its
 * requests (uses of endowed methods, sub-tool calls) are served here with the
 * real capability of the call that made them, once that call is authorized.
 */
export class ModuleSandbox {
  readonly #init: WorkerInit;
  readonly #limits: SandboxLimits;
  readonly #label: string;
  readonly #remotes: ReadonlyMap<string, RemoteObject>;
  #worker: Worker | null = null;
  #starting: Promise<Worker> | null = null;
  #tools: readonly ToolInfo[] | null = null;
  #closed = false;
  readonly #runs = new Map<number, Run>();
  /** Speculative runs by the validated input their needs were computed from: the dispatcher hands the same object to the handler. */
  readonly #byInput = new WeakMap<object, Run>();
  readonly #ended = new Map<number, Capability>();
  readonly #errors = new Map<number, KeptError>();
  #nextRun = 0;
  #nextRef = 0;
  /** Requests (uses of endowed methods, sub-tool calls) each worker made of the host. */
  readonly #requests = new WeakMap<Worker, number>();
  /** Workers stopped: whatever they still send is ignored. */
  readonly #dead = new WeakSet<Worker>();
  /** Pings awaiting their pong, by id. */
  /** Unanswered pings by id; `waiters` are calls held until the ping is answered or its sandbox stopped. */
  readonly #pings = new Map<number, { readonly worker: Worker; readonly timer: NodeJS.Timeout; readonly waiters: (() => void)[] }>();
  #nextPing = 0;
  /** When (monotonic ms) sandboxes were lost, within the restart window. */
  readonly #losses: number[] = [];
  readonly #health = { starts: 0, timeouts: 0, stopped: { timeout: 0, memory: 0, crash: 0 }, rerun: 0, refused: 0 };

  /** The operator's log, if any: stops and refusals. */
  readonly #log: ((line: string) => void) | undefined;
  /** Set while starts are refused for too many losses, so the operator is told once when that begins, not at every call. */
  #refusing = false;

  constructor(init: WorkerInit, limits: SandboxLimits, label: string, remotes: ReadonlyMap<string, RemoteObject>, log?: (line: string) => void) {
    this.#init = init;
    this.#limits = limits;
    this.#label = label;
    this.#remotes = remotes;
    this.#log = log;
  }

  /** Tells the operator; a log that throws is ignored, so a stop always completes. */
  #tell(line: string): void {
    try {
      this.#log?.(line);
    } catch {
      // The log is the operator's; its failure must not leave calls of a stopped sandbox unsettled.
    }
  }

  /** Starts the sandbox and loads the module; resolves to the tools it defines. */
  async start(): Promise<readonly ToolInfo[]> {
    await this.#ensure();
    return this.#tools ?? [];
  }

  /**
   * The needs of a call, computed inside the sandbox from the input. The
   * handler starts right after, so the dispatcher's `run` with the same input
   * object finds it under way (however long the dispatcher waited for the
   * call's intent to be durable meanwhile); if the dispatcher does not run
   * it (a denied need, an approval asked for, a plan only), it `release`s it,
   * and nothing the handler asks for is served.
   */
  async needs(tool: string, input: unknown, tenant: string | null): Promise<unknown> {
    const run = await this.#begin("start", tool, input, tenant);
    const outcome = await run.needs.promise;
    if (!outcome.ok) this.#abandon(run);
    const needs = this.#settle(outcome, run, tool);
    if (typeof input === "object" && input !== null) this.#byInput.set(input, run);
    else this.#abandon(run);
    return needs;
  }

  /** The dispatcher will not run the call whose needs were computed from `input`: its handler is given nothing, and its result dropped. */
  release(input: unknown): void {
    const run = typeof input === "object" && input !== null ? this.#byInput.get(input) : undefined;
    if (run !== undefined) this.#abandon(run);
  }

  /** Runs a tool's handler inside the sandbox; its requests are served with `capability` while the call lasts. */
  async run(tool: string, input: unknown, capability: Capability, context: ToolContext): Promise<unknown> {
    const speculative = typeof input === "object" && input !== null ? this.#byInput.get(input) : undefined;
    const run = speculative?.state === "speculative" && speculative.tool === tool ? speculative : await this.#begin("run", tool, input, context.tenant);
    run.state = "claimed";
    run.authority.resolve({ capability, context });
    try {
      return this.#settle(await run.done.promise, run, tool);
    } finally {
      this.#end(run);
      this.#ended.set(run.id, capability);
      if (this.#ended.size > ENDED_CALLS) this.#ended.delete(this.#ended.keys().next().value as number);
    }
  }

  /** What happened to the sandbox so far. */
  health(): SandboxHealth {
    const h = this.#health;
    return Object.freeze({ ...h, stopped: Object.freeze({ ...h.stopped }) });
  }

  /** Stops the sandbox for good; calls in it fail with SandboxStopped (`closed`), and so do later ones. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker ?? (await this.#starting?.catch(() => null)) ?? null;
    if (worker !== null) {
      this.#stop(worker, "closed");
      await worker.terminate();
    }
  }

  #ensure(): Promise<Worker> {
    if (this.#closed) return Promise.reject(this.#stopped("closed"));
    if (this.#worker !== null) {
      // A sandbox under a stuck check may be spinning: a new call sent there could be lost with it, so it waits to learn which.
      const check = [...this.#pings.values()].find((p) => p.worker === this.#worker);
      if (check === undefined) return Promise.resolve(this.#worker);
      return new Promise<void>((resolve) => check.waiters.push(resolve)).then(() => this.#ensure());
    }
    if (this.#starting === null) {
      const refusal = this.#restartRefusal();
      if (refusal !== null) {
        this.#health.refused++;
        if (!this.#refusing) this.#tell(refusal.message.replace(/; retry in (\d+ s)$/, "; calls are refused for the next $1"));
        this.#refusing = true;
        return Promise.reject(refusal);
      }
      this.#refusing = false;
    }
    this.#starting ??= this.#spawn().finally(() => {
      this.#starting = null;
    });
    return this.#starting;
  }

  /** SandboxStopped (`restarts`) while the sandbox was lost too often within the restart window, else null. */
  #restartRefusal(): SandboxStopped | null {
    const now = monotonicClock.now();
    while (this.#losses.length > 0 && (this.#losses[0] as number) <= now - RESTART_WINDOW_MS) this.#losses.shift();
    if (this.#losses.length < MAX_RESTARTS) return null;
    const retryIn = Math.max(1, Math.ceil(((this.#losses[0] as number) + RESTART_WINDOW_MS - now) / 1000));
    return new SandboxStopped(
      `the sandbox of ${this.#label} was stopped ${this.#losses.length} times in the last ${RESTART_WINDOW_MS / 1000} s (calls in it stopped responding, crashed or ran out of memory), so it is not started again for now; retry in ${retryIn} s`,
      "restarts",
    );
  }

  #spawn(): Promise<Worker> {
    return new Promise((resolve, reject) => {
      const { memoryMb, loadTimeoutMs } = this.#limits;
      const worker = new Worker(WORKER_URL, {
        workerData: this.#init,
        // Defence in depth under SES: even the worker's own process.env is empty, and it inherits none of the application's flags.
        env: {},
        execArgv: [],
        argv: [],
        stdin: false,
        stdout: true,
        stderr: true,
        name: `agentcap sandbox: ${this.#label}`,
        resourceLimits: { maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: Math.max(4, Math.min(32, Math.floor(memoryMb / 8))), stackSizeMb: 4 },
      });
      // The sandbox's output never reaches the application's stdout (an MCP stdio transport, say); the tail helps explain a failed start.
      let stderr = "";
      worker.stdout.resume();
      worker.stderr.on("data", (chunk: Buffer) => {
        stderr = (stderr + chunk.toString("utf8")).slice(-2000);
      });
      let ready = false;
      let outOfMemory = false;
      const fail = (error: Error) => {
        clearTimeout(timer);
        ready = true;
        void worker.terminate();
        reject(error);
      };
      const timer = setTimeout(() => {
        fail(new SandboxTimeout(`loading tool module ${this.#label} ran past its ${loadTimeoutMs} ms time limit; its sandbox was stopped`, loadTimeoutMs));
      }, loadTimeoutMs);
      worker.on("message", (message: WorkerMessage) => {
        if (ready) {
          this.#receive(worker, message);
          return;
        }
        if (message.t === "failed") {
          const e = message.error;
          if (e.kind === "violation") fail(new SandboxViolation(`tool module ${this.#label}: ${e.message}`));
          else if (e.kind === "internal") fail(new SandboxStopped(`the sandbox of ${this.#label} could not start: ${e.message}`, "crash"));
          else {
            const detail = e.kind === "tool" ? `${e.name}: ${e.message}` : e.kind === "host" ? e.error.message : e.message;
            fail(new InvalidInput(`tool module ${this.#label} could not be loaded: ${detail}`));
          }
          return;
        }
        if (message.t !== "ready") return;
        if (this.#tools !== null && JSON.stringify(this.#tools) !== JSON.stringify(message.tools)) {
          fail(new SandboxStopped(`tool module ${this.#label} defined different tools when its sandbox restarted`, "crash"));
          return;
        }
        clearTimeout(timer);
        ready = true;
        this.#tools ??= message.tools;
        this.#health.starts++;
        this.#worker = worker;
        worker.unref();
        resolve(worker);
      });
      worker.on("error", (e: Error & { code?: unknown }) => {
        if (e.code === "ERR_WORKER_OUT_OF_MEMORY") outOfMemory = true;
      });
      worker.on("exit", () => {
        const reason: SandboxStopReason = outOfMemory ? "memory" : "crash";
        if (!ready) fail(this.#stopped(reason, stderr));
        else this.#stop(worker, reason, new Map(), stderr);
      });
    });
  }

  /** Starts a run in the sandbox, under the call time limit. */
  async #begin(t: "start" | "run", tool: string, input: unknown, tenant: string | null): Promise<Run> {
    const worker = await this.#ensure();
    const id = ++this.#nextRun;
    const run: Run = {
      id,
      worker,
      tool,
      input,
      tenant,
      kind: t,
      timer: null,
      seen: 0,
      needsReported: false,
      rerun: false,
      parked: false,
      needs: deferred(),
      done: deferred(),
      authority: deferred(),
      state: "speculative",
    };
    this.#runs.set(id, run);
    try {
      this.#hand(run, worker);
    } catch (e) {
      this.#end(run);
      throw new InvalidInput(`input for tool ${tool} is not plain data: ${e instanceof Error ? e.message : String(e)}`);
    }
    return run;
  }

  /** Hands `run` to `worker`, its time limit starting now. */
  #hand(run: Run, worker: Worker): void {
    const { timeoutMs } = this.#limits;
    if (run.timer !== null) clearTimeout(run.timer);
    run.parked = false;
    run.worker = worker;
    run.seen = this.#requests.get(worker) ?? 0;
    run.timer = setTimeout(() => {
      this.#timedOut(run.id);
    }, timeoutMs);
    worker.ref();
    const t = run.kind === "start" && !run.needsReported ? "start" : "run";
    worker.postMessage({ t, id: run.id, tool: run.tool, input: run.input, tenant: run.tenant } satisfies HostMessage);
  }

  /** Runs again, in a fresh sandbox, a call caught in a stopped one before it asked the host for anything: it has done nothing yet. */
  async #rerun(run: Run): Promise<void> {
    run.rerun = true;
    try {
      const worker = await this.#ensure();
      if (this.#runs.get(run.id) !== run) return;
      this.#hand(run, worker);
      this.#health.rerun++;
    } catch (e) {
      const error = e instanceof Error ? e : new SandboxStopped(String(e), "crash");
      this.#end(run);
      run.needs.reject(error);
      run.done.reject(error);
      run.authority.reject(error);
    }
  }

  /** A run that will not be claimed: whatever its handler asks for is refused, and what it returns is dropped. */
  #abandon(run: Run): void {
    if (run.state !== "speculative") return;
    run.state = "abandoned";
    run.authority.reject(new NotACapability(`the call to tool ${run.tool} was not authorized, so it holds no capability`));
    this.#end(run);
  }

  /** Forgets a run; the worker stops keeping the process alive once it has none left. */
  #end(run: Run): void {
    if (run.timer !== null) clearTimeout(run.timer);
    if (!this.#runs.delete(run.id)) return;
    if (![...this.#runs.values()].some((r) => r.worker === run.worker)) run.worker.unref();
  }

  /**
   * A call ran past its time limit: it alone fails, with SandboxTimeout (its
   * capability is revoked as its call ends, so whatever it still does inside
   * reaches nothing). The other calls in its sandbox go on, unless the
   * sandbox no longer answers a ping: then it is stuck and is stopped. A call
   * that reaches its limit while that ping is unanswered may only have been
   * held up by the stuck one: it waits for the outcome (see #stop).
   */
  #timedOut(id: number): void {
    const run = this.#runs.get(id);
    if (run === undefined) return;
    if ([...this.#pings.values()].some((p) => p.worker === run.worker)) {
      run.parked = true;
      return;
    }
    this.#giveUp(run);
    this.#ping(run.worker, run.tool);
  }

  /** Fails a call that ran past its time limit with SandboxTimeout. */
  #giveUp(run: Run): void {
    const { timeoutMs } = this.#limits;
    this.#health.timeouts++;
    const error = new SandboxTimeout(`tool ${run.tool} ran past its ${timeoutMs} ms time limit and was given up`, timeoutMs);
    this.#end(run);
    run.needs.reject(error);
    run.done.reject(error);
    run.authority.reject(error);
  }

  /** Asks `worker` whether its event loop still turns; one that does not answer in time is stopped. */
  #ping(worker: Worker, tool: string): void {
    if (this.#dead.has(worker) || [...this.#pings.values()].some((p) => p.worker === worker)) return;
    const id = ++this.#nextPing;
    // #stop forgets the ping and resumes the calls it held.
    const timer = setTimeout(() => {
      this.#stop(worker, "timeout", new Map(), `a call of tool ${tool} in it ran past its time limit and the sandbox stopped responding`);
    }, Math.min(this.#limits.timeoutMs, WEDGED_AFTER_MS));
    this.#pings.set(id, { worker, timer, waiters: [] });
    worker.ref();
    worker.postMessage({ t: "ping", id } satisfies HostMessage);
  }

  #receive(worker: Worker, message: WorkerMessage): void {
    // A stopped worker's last words: its calls have ended or run elsewhere, and nothing it asks for is served.
    if (this.#dead.has(worker)) return;
    switch (message.t) {
      case "pong": {
        const ping = this.#pings.get(message.id);
        if (ping?.worker !== worker) return;
        clearTimeout(ping.timer);
        this.#pings.delete(message.id);
        for (const resume of ping.waiters) resume();
        // The sandbox responds: the calls that reached their limit meanwhile were slow on their own.
        for (const run of [...this.#runs.values()]) if (run.worker === worker && run.parked) this.#giveUp(run);
        if (![...this.#runs.values()].some((r) => r.worker === worker)) worker.unref();
        return;
      }
      case "needs":
      case "done": {
        const run = this.#runs.get(message.id);
        if (run?.worker !== worker) return;
        if (message.t === "needs" && message.ok) run.needsReported = true;
        // Failed needs end the run: its handler never starts.
        if (message.t === "done" || !message.ok) {
          run.done.resolve(message);
          if (run.state === "abandoned") this.#end(run);
        }
        if (message.t === "needs") run.needs.resolve(message);
        return;
      }
      case "use":
      case "call":
        this.#requests.set(worker, (this.#requests.get(worker) ?? 0) + 1);
        void this.#serve(worker, message);
        return;
      default:
        return;
    }
  }

  async #serve(worker: Worker, message: WorkerMessage & { t: "use" | "call" }): Promise<void> {
    const call = message.t === "use" ? message.cap.call : message.from;
    const by = { call: this.#runs.has(call) ? call : null, lastRun: this.#nextRun };
    let reply: HostMessage;
    try {
      const value = message.t === "use" ? await this.#use(message) : await this.#subCall(message);
      reply = { t: "reply", id: message.id, ok: true, value };
    } catch (e) {
      reply = { t: "reply", id: message.id, ok: false, error: this.#keep(e, call, by) };
    }
    try {
      worker.postMessage(reply);
    } catch (e) {
      const what = message.t === "use" ? `${message.endowment}.${message.method}` : `tool ${message.tool}`;
      const refused = new InvalidInput(`what ${what} returned cannot cross into the sandbox: ${e instanceof Error ? e.message : String(e)}`);
      worker.postMessage({ t: "reply", id: message.id, ok: false, error: this.#keep(refused, call, by) } satisfies HostMessage);
    }
  }

  async #use(message: WorkerMessage & { t: "use" }): Promise<unknown> {
    const remote = this.#remotes.get(message.endowment);
    const method = remote?.methods.get(message.method);
    if (remote === undefined || method === undefined) throw new SandboxViolation(`${message.endowment}.${message.method} is not an endowed method`);
    const capability = await this.#capability(message.cap);
    return await method.call(remote.target, capability, ...(Array.isArray(message.args) ? (message.args as unknown[]) : []));
  }

  async #subCall(message: WorkerMessage & { t: "call" }): Promise<unknown> {
    const run = this.#runs.get(message.from);
    if (run === undefined) throw new InvalidInput(`the call that tried to call tool ${message.tool} has returned`);
    const { context } = await run.authority.promise;
    const capability = await this.#capability(message.cap);
    return await context.call(message.tool, message.input, capability, message.tenant === null ? undefined : { tenant: message.tenant });
  }

  /**
   * The capability a sandboxed reference stands for: its call's (once the
   * call is authorized), narrowed by each of its grants (validated by the
   * kernel). A reference kept past its call meets the revoked capability.
   */
  async #capability(ref: CapabilityRef): Promise<Capability> {
    const run = this.#runs.get(ref.call);
    const base = run === undefined ? this.#ended.get(ref.call) : (await run.authority.promise).capability;
    if (base === undefined || !Array.isArray(ref.grants)) {
      throw new NotACapability("this capability belonged to a call that returned long ago; a handler's capability lives only as long as its call");
    }
    return ref.grants.reduce<Capability>((cap, grant) => narrow(cap, grant as Grant), base);
  }

  /**
   * Keeps a host error, and describes it for the sandbox in the words any
   * caller would get (callerMessage: a denial names its rule, never a link,
   * principal or revocation reason); the original is rethrown if the tool
   * lets it through from a call that may see it (see #mayRethrow).
   */
  #keep(error: unknown, call: number, by: Omit<KeptError, "error">): HostError {
    const ref = ++this.#nextRef;
    this.#errors.set(ref, { error, ...by });
    if (this.#errors.size > KEPT_ERRORS) this.#errors.delete(this.#errors.keys().next().value as number);
    const { code, text } = callerMessage(error);
    return { call, ref, name: error instanceof Error ? error.name : "Error", code, message: text };
  }

  /** The value of a finished step, or the error it stands for. */
  #settle(outcome: Outcome, run: Run, tool: string): unknown {
    if (outcome.ok) return outcome.value;
    const e = outcome.error;
    switch (e.kind) {
      case "violation":
        throw new SandboxViolation(`tool ${tool}: ${e.message}`);
      case "host": {
        const kept = this.#errors.get(e.error.ref);
        if (kept !== undefined && kept.error instanceof Error && this.#mayRethrow(kept, run)) throw kept.error;
        throw toolFailure(tool, e.error.name, e.error.message);
      }
      case "input":
        throw new InvalidInput(`invalid input for tool ${tool}: ${e.message}`);
      case "unclonable":
        throw new ForeignFailure(`tool ${tool}: ${e.message}`, { cause: namedError("DataCloneError", e.message) });
      case "tool":
        throw toolFailure(tool, e.name, e.message);
      case "internal":
        throw new SandboxStopped(`the sandbox of ${this.#label} failed: ${e.message}`, "crash");
    }
  }

  /**
   * Whether `run` may end with a kept host error as itself: tool code can
   * keep one call's host error (a denial naming that call's principal and
   * links) and throw it from another caller's call. Only the call whose
   * authority the request used may, or, for a request made with what a
   * returned call left (the kernel's Revoked), a call running when it came.
   * Any other call ends with the tool's failure, in the words the tool saw.
   */
  #mayRethrow(kept: KeptError, run: Run): boolean {
    return kept.call === null ? run.id <= kept.lastRun : kept.call === run.id;
  }

  /**
   * Ends a worker, once, and the next call starts a fresh one. When it was
   * stopped for being stuck (`timeout`), its calls that had asked the host
   * for nothing since they were handed to it (no request of the worker's
   * arrived after that) have done nothing outside the sandbox, and were
   * likely only held up, so they run again in the fresh one, once. The rest
   * fail: `specific` ones with their own error, those past their time limit
   * with SandboxTimeout, the others with SandboxStopped. After a crash or
   * running out of memory nothing runs again: the call that caused it is
   * not known, and would stop the fresh sandbox too.
   */
  #stop(worker: Worker, reason: SandboxStopReason, specific: ReadonlyMap<number, Error> = new Map(), detail = ""): void {
    if (this.#dead.has(worker)) return;
    this.#dead.add(worker);
    if (this.#worker === worker) this.#worker = null;
    for (const [id, ping] of this.#pings) {
      if (ping.worker !== worker) continue;
      clearTimeout(ping.timer);
      this.#pings.delete(id);
      for (const resume of ping.waiters) resume();
    }
    if (reason !== "closed" && reason !== "restarts") {
      this.#losses.push(monotonicClock.now());
      this.#health.stopped[reason]++;
    }
    const requests = this.#requests.get(worker) ?? 0;
    const again: Run[] = [];
    let failed = 0;
    for (const run of [...this.#runs.values()]) {
      if (run.worker !== worker) continue;
      if (reason === "timeout" && !specific.has(run.id) && !run.rerun && run.seen === requests) {
        if (run.timer !== null) clearTimeout(run.timer);
        again.push(run);
        continue;
      }
      failed++;
      if (run.parked && !specific.has(run.id)) {
        this.#giveUp(run);
        continue;
      }
      const error = specific.get(run.id) ?? this.#stopped(reason, detail);
      this.#end(run);
      run.needs.reject(error);
      run.done.reject(error);
      run.authority.reject(error);
    }
    void worker.terminate();
    for (const run of again) void this.#rerun(run);
    if (reason !== "closed" && reason !== "restarts") {
      const stoppedCalls = `${String(again.length)} call${again.length === 1 ? "" : "s"} run again in a fresh one, ${String(failed)} failed`;
      const why = detail.replace(/\p{Cc}+/gu, " ").trim();
      this.#tell(`the sandbox of ${this.#label} was stopped (${reason}${why === "" ? "" : `: ${why}`}); ${stoppedCalls}; ${String(this.#losses.length)} of ${String(MAX_RESTARTS)} stops allowed within ${String(RESTART_WINDOW_MS / 1000)} s`);
    }
  }

  #stopped(reason: SandboxStopReason, detail = ""): SandboxStopped {
    const label = this.#label;
    const messages: Record<SandboxStopReason, string> = {
      memory: `the sandbox of ${label} reached its ${this.#limits.memoryMb} MB memory ceiling and was stopped`,
      timeout: `the sandbox of ${label} was stopped because ${detail.trim() === "" ? "another call in it ran past its time limit and the sandbox stopped responding" : detail.trim()}; this call may already have acted through the host, so it was not run again: retry it if that is safe`,
      crash: `the sandbox of ${label} stopped unexpectedly${detail.trim() === "" ? "" : `: ${detail.trim()}`}`,
      closed: `the sandbox of ${label} is closed`,
      restarts: `the sandbox of ${label} was stopped too often lately and is not started again for now; retry later`,
    };
    return new SandboxStopped(messages[reason], reason);
  }
}
