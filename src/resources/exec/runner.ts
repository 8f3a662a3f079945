import {
  authorize,
  check,
  denialError,
  InvalidInput,
  isCapability,
  NotACapability,
  type AuditSink,
  type Capability,
  type Denied,
  type ExecRequest,
  type FsRequest,
} from "../../kernel/index.js";
import { audited, auditOption, type Access } from "../audited.js";
import { inCallersWords } from "../denials.js";
import { inspectProgram, requireDirectory, resolvedRun, writtenRun, type RunRequests } from "./canonical.js";
import { envSource, scrubbedEnv } from "./env.js";
import { parseCall, type ExecLimits, type OutputEncoding, type RunOptions } from "./input.js";
import { canWatchMemory } from "./memory.js";
import { runJob, type Exit } from "./process.js";
import { watchAuthority } from "./watch.js";
import { checkTrusted, trustedMintsOption } from "../../kernel/internal.js";

export type { ExecLimits, OutputEncoding, RunOptions } from "./input.js";

/**
 * The reach `exec.run` needs: running a program, and listing its working
 * directory, because the working directory is confined by the capability's
 * `fs` grant as well as by the exec rule's `cwd`.
 */
export interface ExecReach {
  readonly exec: "run";
  readonly fs: "list";
}

/** How a run ended: plain data, never a process handle. Output is text or bytes per `encoding`. */
export interface ExecResult<Output extends string | Uint8Array = string> {
  /** The exit code, or null when the program was ended by a signal. */
  readonly exitCode: number | null;
  /** The signal that ended the program, such as "SIGSEGV", or null. */
  readonly signal: string | null;
  readonly stdout: Output;
  readonly stderr: Output;
}

/** What the application configures on the resource: the variables it may pass on, and the ceiling of every limit. */
export interface ExecConfig {
  /** Values of the variables a run may name; process.env is never read. */
  readonly env?: Readonly<Record<string, string>>;
  /** Limits for every run; a call may only tighten them. */
  readonly limits?: Partial<ExecLimits>;
  /**
   * Where every run is recorded: one resource event per run, allowed or
   * denied, written before the run settles; a failing sink fails the run with
   * AuditFailure (the program has run by then). Without it, nothing is recorded.
   */
  readonly audit?: AuditSink;
  /**
   * The mints whose roots this resource accepts (their `Mint.id`s). A
   * capability another mint issued is denied at its first decision, before
   * anything is done. Without it, any mint's roots are accepted.
   */
  readonly mints?: readonly string[];
}

/** The confined subprocess resource. */
export interface Exec {
  /**
   * Runs `argv` (absolute program path first; no shell, no PATH search) in
   * `options.cwd`. The program and cwd are resolved to their real paths, then
   * the capability must allow both `{ action: "exec", argv, cwd, env }` and
   * `fs.list` on the cwd; only then is anything started. The environment
   * holds exactly the variables named in `options.env`. Rejects with
   * InvalidInput, CapabilityDenied, Revoked, Expired or BudgetExhausted before
   * starting anything; once started, with LimitExceeded on a limit and with
   * Revoked or Expired when the capability dies, after killing the program's
   * process group. A non-zero exit is a result, not an error.
   */
  run(cap: Capability<ExecReach>, argv: readonly string[], options: RunOptions & { readonly encoding: "bytes" }): Promise<ExecResult<Uint8Array>>;
  run(cap: Capability<ExecReach>, argv: readonly string[], options: RunOptions & { readonly encoding?: "utf8" }): Promise<ExecResult>;
}

/** Limits when the application sets none: 30 s, 1 MiB of combined stdout and stderr, no memory limit. */
export const DEFAULT_EXEC_LIMITS: ExecLimits = Object.freeze({ timeoutMs: 30_000, maxOutputBytes: 1024 * 1024, maxMemoryBytes: null });

function configLimits(limits: unknown): ExecLimits {
  if (limits === undefined) return DEFAULT_EXEC_LIMITS;
  if (typeof limits !== "object" || limits === null) throw new InvalidInput("invalid exec config: limits: expected an object");
  const out: Record<string, number | null> = { ...DEFAULT_EXEC_LIMITS };
  for (const [name, value] of Object.entries(limits)) {
    if (!Object.hasOwn(DEFAULT_EXEC_LIMITS, name)) {
      throw new InvalidInput(`invalid exec config: limits.${name}: is not a limit (limits are timeoutMs, maxOutputBytes, maxMemoryBytes)`);
    }
    if (!Number.isSafeInteger(value) || (value as number) <= 0 || (name !== "maxMemoryBytes" && (value as number) > 2 ** 31 - 1)) {
      const range = name === "maxMemoryBytes" ? "" : " up to 2147483647";
      throw new InvalidInput(`invalid exec config: limits.${name}: must be a positive whole number${range}, got ${String(value)}`);
    }
    out[name] = value as number;
  }
  return out as unknown as ExecLimits;
}

function rejectMemoryLimitIfUnsupported(limits: ExecLimits): void {
  if (limits.maxMemoryBytes !== null && !canWatchMemory) {
    throw new InvalidInput(`maxMemoryBytes needs Linux /proc to be enforced, and this is ${process.platform}; it is refused rather than ignored`);
  }
}

/** What a request names, as the kernel's reason ends with it. */
function named(request: ExecRequest | FsRequest): string {
  return request.action === "exec" ? `${JSON.stringify(request.argv)} in ${request.cwd}` : request.path;
}

function withNotes(decision: Denied, notes: readonly string[]): Denied {
  return notes.length === 0 ? decision : Object.freeze({ ...decision, reason: [decision.reason, ...notes].join("; ") });
}

/**
 * Records the kernel's denial of `request` (as written or resolved) and
 * throws it, told in the caller's words (`written`) and extended with what
 * the resource knows about the call; never with where a path resolved to.
 */
function throwDenied(access: Access, request: ExecRequest | FsRequest, decision: Denied, written: RunRequests): never {
  const notes =
    request.action === "exec"
      ? (request.env ?? []).length === 0 ? [] : [`the run asked to pass environment variables ${(request.env ?? []).join(", ")}`]
      : ["the working directory must be listable through the capability's fs grant"];
  access.decided(request, withNotes(decision, notes));
  const own = request.action === "exec" ? written.exec : written.list;
  throw denialError(withNotes(inCallersWords(decision, named(request), named(own)), notes));
}

/** Bytes of output a run returned, for its audit event. */
function outputBytes(result: ExecResult<string | Uint8Array>): number {
  const size = (o: string | Uint8Array) => (typeof o === "string" ? Buffer.byteLength(o) : o.byteLength);
  return size(result.stdout) + size(result.stderr);
}

function decode(exit: Exit, encoding: OutputEncoding): ExecResult<string | Uint8Array> {
  const text = new TextDecoder();
  const stdout = encoding === "bytes" ? exit.stdout : text.decode(exit.stdout);
  const stderr = encoding === "bytes" ? exit.stderr : text.decode(exit.stderr);
  return Object.freeze({ exitCode: exit.exitCode, signal: exit.signal, stdout, stderr });
}

/**
 * Creates the confined subprocess resource. Throws InvalidInput for a bad
 * config. The resource holds no authority of its own: every run is decided by
 * the capability passed to it, and recorded in `config.audit` when given.
 */
export function createExec(config: ExecConfig = {}): Exec {
  if (process.platform === "win32") throw new InvalidInput("the exec resource needs POSIX process groups and does not run on Windows");
  if (typeof config !== "object" || (config as unknown) === null || Array.isArray(config)) throw new InvalidInput("invalid exec config: expected an object");
  for (const key of Object.keys(config)) {
    if (key !== "env" && key !== "limits" && key !== "audit" && key !== "mints") throw new InvalidInput(`invalid exec config: ${key}: is not a setting (settings are env, limits, audit, mints)`);
  }
  const sink = auditOption(config, "createExec");
  const trusted = trustedMintsOption(config, "createExec");
  const source = envSource(config.env);
  const ceilings = configLimits(config.limits);
  rejectMemoryLimitIfUnsupported(ceilings);

  const start = async (access: Access, cap: Capability<ExecReach>, argv: readonly string[], options: RunOptions): Promise<ExecResult<string | Uint8Array>> => {
    // Refused before any file-system look-up, so a forged capability causes no I/O at all.
    if (!isCapability(cap)) throw new NotACapability("exec.run needs a capability issued by this kernel");
    const call = parseCall(argv, options, ceilings);
    rejectMemoryLimitIfUnsupported(call.limits);
    const env = scrubbedEnv(source, call.env);
    const written = writtenRun({ argv: call.argv, cwd: call.cwd, env: call.env, tenant: call.tenant });
    const decide = (request: ExecRequest | FsRequest): void => {
      const decision = checkTrusted(trusted, cap, request);
      if (!decision.allowed) throwDenied(access, request, decision, written);
    };

    // As written first: a run denied in the caller's own words touches nothing.
    decide(written.list);
    decide(written.exec);
    const resolved = resolvedRun(written, (request) => {
      const decision = check(cap, request);
      return decision.allowed ? null : { request, decision };
    });
    if (!("exec" in resolved)) throwDenied(access, resolved.request, resolved.decision, written);
    const { exec: execRequest, list: listRequest } = resolved;
    access.about(execRequest);
    // Then on real paths, before the program is opened.
    if (listRequest.path !== written.list.path) decide(listRequest);
    decide(execRequest);
    const [shownProgram = ""] = written.exec.argv;
    const [program = "", ...args] = execRequest.argv;
    inspectProgram(program, shownProgram);
    requireDirectory(listRequest.path, written.list.path);

    // The checks above charge nothing; this authorization charges one use.
    // Recording the intent is the one wait before the spawn, and proceed
    // asks again whether the capability is live once it is over, so no
    // revocation or expiry can slip between the decision and the start.
    const decision = authorize(cap, execRequest);
    if (!decision.allowed) throwDenied(access, execRequest, decision, written);
    access.decided(execRequest, decision);
    await access.proceed();
    const cwd = listRequest.path;
    const watch = watchAuthority(cap);
    try {
      return decode(await runJob({ program, args, cwd, env, input: call.input, limits: call.limits }, watch.signal), call.encoding);
    } finally {
      watch.dispose();
    }
  };
  const run = (cap: Capability<ExecReach>, argv: readonly string[], options: RunOptions): Promise<ExecResult<string | Uint8Array>> =>
    audited(sink, cap, (access) => start(access, cap, argv, options), outputBytes);
  return Object.freeze({ run }) as Exec;
}
