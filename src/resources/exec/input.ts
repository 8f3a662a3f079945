import { z } from "zod";
import { InvalidInput } from "../../kernel/index.js";
import { describeIssues } from "../../kernel/internal.js";

/*
 * Validation of what a caller hands to `exec.run`: the argv array and the
 * per-call options. Everything is copied into fresh values first, so a
 * getter, a Proxy or a polluted Object.prototype cannot change what was
 * checked, and no field outside the known set is accepted (a stray `shell` or
 * `argv0` is refused instead of being ignored).
 */

/** The time, output and memory limits of one run. `maxMemoryBytes` null means no memory limit. */
export interface ExecLimits {
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  readonly maxMemoryBytes: number | null;
}

/** How stdout and stderr are returned: decoded as UTF-8 text, or as the raw bytes. */
export type OutputEncoding = "utf8" | "bytes";

/** Per-call options of `exec.run`. Limits may only be tightened below the resource's own. */
export interface RunOptions {
  /** Working directory; resolved to its real path, then confined by the exec rule's `cwd` and by fs `list`. */
  readonly cwd: string;
  /** Names of the environment variables to pass; values come from the resource's configured map. */
  readonly env?: readonly string[];
  /** Written to the program's standard input, which is otherwise closed. */
  readonly input?: string | Uint8Array;
  /** The tenant the run acts for, required by capabilities confined to tenants. */
  readonly tenant?: string;
  readonly timeoutMs?: number;
  readonly maxOutputBytes?: number;
  readonly maxMemoryBytes?: number;
  /** `utf8` (default) returns strings; `bytes` returns Uint8Arrays. */
  readonly encoding?: OutputEncoding;
}

/** A validated call: fresh copies, limits already combined with the resource's. */
export interface ParsedCall {
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: readonly string[];
  readonly input: Uint8Array | null;
  readonly tenant: string | undefined;
  readonly limits: ExecLimits;
  readonly encoding: OutputEncoding;
}

// Linux refuses a single argument longer than MAX_ARG_STRLEN (128 KiB) and the
// whole argv beyond ARG_MAX; refusing here turns a late spawn failure into a clear error.
const MAX_ARGS = 4096;
const MAX_ARG_LENGTH = 128 * 1024 - 1;
const MAX_ARGV_TOTAL = 1024 * 1024;

const noNul = (what: string) => z.string().refine((s) => !s.includes("\0"), `${what} must not contain a NUL byte`);
const positiveInt = z.number().int().positive().max(2 ** 31 - 1);

const argvList = z
  .array(noNul("an argument").max(MAX_ARG_LENGTH, `an argument must be at most ${MAX_ARG_LENGTH} characters`), {
    error: "argv must be an array of strings such as [\"/usr/bin/echo\", \"hello\"]; no shell command strings",
  })
  .min(1, "argv must name the program as its first element")
  .max(MAX_ARGS, `argv may hold at most ${MAX_ARGS} elements`)
  .superRefine((argv, ctx) => {
    const program = argv[0] ?? "";
    if (!program.startsWith("/")) {
      ctx.addIssue({
        code: "custom",
        path: [0],
        message: `program ${JSON.stringify(program)} must be an absolute path; agentcap never searches PATH`,
      });
    }
    if (argv.reduce((n, a) => n + a.length, 0) > MAX_ARGV_TOTAL) {
      ctx.addIssue({ code: "custom", message: `argv must total at most ${MAX_ARGV_TOTAL} characters` });
    }
  });
// Wrapped in an object so that messages name the element, such as "argv.1".
const argvSchema = z.object({ argv: argvList });

const optionsSchema = z.strictObject({
  cwd: noNul("cwd").refine((p) => p.startsWith("/"), "cwd must be an absolute path"),
  env: z
    .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name (letters, digits, _), without a value"))
    .max(1024)
    .optional(),
  input: z.union([z.string(), z.instanceof(Uint8Array)]).optional(),
  tenant: z.string().min(1).max(256).optional(),
  timeoutMs: positiveInt.optional(),
  maxOutputBytes: positiveInt.optional(),
  maxMemoryBytes: z.number().int().positive().optional(),
  encoding: z.enum(["utf8", "bytes"]).optional(),
});

const OPTION_KEYS: readonly string[] = Object.keys(optionsSchema.shape);

/** Copies the own fields of `value` that name options; any other field is an error. */
function ownOptions(value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidInput("invalid exec options: expected an object such as { cwd: \"/srv/work\" }");
  }
  // No prototype: zod walks keys with for…in, and a polluted prototype must neither add options nor fail the call.
  const out = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(value)) {
    if (!OPTION_KEYS.includes(key)) {
      throw new InvalidInput(`invalid exec options: ${key}: is not an option of exec.run (options are ${OPTION_KEYS.join(", ")})`);
    }
    out[key] = (value as Record<string, unknown>)[key];
  }
  return out;
}

function tighten<C extends number | null>(name: keyof ExecLimits, asked: number | undefined, ceiling: C): number | C {
  if (asked === undefined) return ceiling;
  if (ceiling !== null && asked > ceiling) {
    throw new InvalidInput(`invalid exec options: ${name}: ${asked} is above this resource's limit of ${ceiling}; a call can only tighten limits`);
  }
  return asked;
}

/** Validates `argv` and `options` against `ceilings`; throws InvalidInput naming the bad field. The result shares nothing with the inputs. */
export function parseCall(argv: unknown, options: unknown, ceilings: ExecLimits): ParsedCall {
  const a = argvSchema.safeParse({ argv });
  if (!a.success) throw new InvalidInput(describeIssues("exec arguments", a.error));
  const o = optionsSchema.safeParse(ownOptions(options));
  if (!o.success) throw new InvalidInput(describeIssues("exec options", o.error));
  const { cwd, env, input, tenant, timeoutMs, maxOutputBytes, maxMemoryBytes, encoding } = o.data;
  return {
    argv: Object.freeze(a.data.argv),
    cwd,
    env: Object.freeze([...new Set(env ?? [])]),
    input: input === undefined ? null : typeof input === "string" ? new TextEncoder().encode(input) : input.slice(),
    tenant,
    limits: {
      timeoutMs: tighten("timeoutMs", timeoutMs, ceilings.timeoutMs),
      maxOutputBytes: tighten("maxOutputBytes", maxOutputBytes, ceilings.maxOutputBytes),
      maxMemoryBytes: tighten("maxMemoryBytes", maxMemoryBytes, ceilings.maxMemoryBytes),
    },
    encoding: encoding ?? "utf8",
  };
}
