import { z } from "zod";
import { AgentcapError, AuditFailure, InvalidInput, type Request } from "../kernel/index.js";
import { describeIssues, snapshotPlainData, type PlainData } from "../kernel/internal.js";

/** What replaces a redacted value in the log. */
export const REDACTED = "[redacted]";

/**
 * Which parts of a request reach the audit log. Tool outputs and tool inputs
 * never do (an event records only the canonical request and the size of the
 * result); this policy covers what a request itself can carry. The defaults
 * keep what an investigation needs (paths, origins and URL paths, models and
 * column names, programs) and replace values that commonly hold secrets or
 * personal data.
 */
export interface RedactionPolicy {
  /**
   * HTTP query strings. `"values"` (default): parameter names stay, values
   * become `[redacted]`, the fragment is dropped. `"drop"`: the query and the
   * fragment are removed. `"keep"`: the URL is logged as requested.
   */
  readonly httpQuery?: "values" | "drop" | "keep";
  /** Database row-scope values. `"values"` (default): column names stay, values become `[redacted]`. `"keep"`: logged as requested. */
  readonly dbScope?: "values" | "keep";
  /**
   * Command arguments after the program. `"secrets"` (default): values of
   * secret-looking flags (`--token=…`, `--password …`), headers
   * (`Authorization: …`) and assignments (`API_KEY=…`) become `[redacted]`,
   * and URL arguments follow `httpQuery`. `"all"`: every argument is
   * replaced. `"keep"`: logged as requested.
   */
  readonly execArgs?: "secrets" | "all" | "keep";
  /**
   * The names of the environment variables passed to a command (requests
   * carry names, never values). `"keep"` (default) or `"drop"`.
   */
  readonly execEnv?: "keep" | "drop";
  /** A last step of your own over the already-redacted request; it must return a request with the same action. */
  readonly custom?: (request: Request) => Request;
}

/** A request as the log stores it, and a scrubber that takes the same values out of free text about it. */
export interface Redacted {
  readonly request: Record<string, PlainData>;
  readonly scrub: (text: string) => string;
}

/** Applies a policy to one request (already validated and snapshotted as plain data). */
export type Redactor = (request: Record<string, PlainData>) => Redacted;

const SECRET_NAME = /pass|secret|token|key|auth|credential|cookie|signature|bearer|session/i;

const policySchema = z.strictObject({
  httpQuery: z.enum(["values", "drop", "keep"]).optional(),
  dbScope: z.enum(["values", "keep"]).optional(),
  execArgs: z.enum(["secrets", "all", "keep"]).optional(),
  execEnv: z.enum(["keep", "drop"]).optional(),
  custom: z.custom<(request: Request) => Request>((v) => typeof v === "function", "must be a function").optional(),
});

/** Validates a policy (InvalidInput naming the bad field) and returns the redactor it describes. */
export function compileRedaction(policy: RedactionPolicy = {}): Redactor {
  const parsed = policySchema.safeParse(policy);
  if (!parsed.success) throw new InvalidInput(describeIssues("redaction policy", parsed.error));
  const { httpQuery = "values", dbScope = "values", execArgs = "secrets", execEnv = "keep", custom } = parsed.data;

  return (request) => {
    const removed: string[] = [];
    const out: Record<string, PlainData> = { ...request };
    switch (request.action) {
      case "http.request":
        out.url = redactUrl(request.url as string, httpQuery, removed);
        break;
      case "db.read":
      case "db.create":
      case "db.update":
      case "db.delete":
        if (dbScope === "values") out.scope = redactScope(request.scope, removed);
        break;
      case "exec":
        out.argv = redactArgv(request.argv as string[], execArgs, httpQuery, removed);
        if (execEnv === "drop") delete out.env;
        break;
    }
    return {
      request: custom === undefined ? out : applyCustom(custom, out),
      scrub: (text) => scrubText(text, removed, httpQuery !== "keep"),
    };
  };
}

function applyCustom(custom: (request: Request) => Request, request: Record<string, PlainData>): Record<string, PlainData> {
  let result: unknown;
  try {
    result = custom(request as unknown as Request);
  } catch (e) {
    if (e instanceof AgentcapError) throw e;
    throw new AuditFailure(`the custom redaction threw: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const data = snapshotPlainData(result, "redaction.custom result");
  if (typeof data !== "object" || data === null || Array.isArray(data) || data.action !== request.action) {
    throw new InvalidInput(`redaction.custom must return a request with the same action (${request.action as string})`);
  }
  return data;
}

/** Redacts the query and fragment of a URL string; userinfo is always redacted. */
function redactUrl(url: string, mode: "values" | "drop" | "keep", removed: string[]): string {
  const withoutUserinfo = url.replace(/^(https?:\/\/)([^/?#@]*)@/i, (_m, scheme: string, userinfo: string) => {
    removed.push(userinfo);
    return `${scheme}${REDACTED}@`;
  });
  if (mode === "keep") return withoutUserinfo;
  const hashAt = withoutUserinfo.indexOf("#");
  const noFragment = hashAt < 0 ? withoutUserinfo : withoutUserinfo.slice(0, hashAt);
  if (hashAt >= 0) removed.push(withoutUserinfo.slice(hashAt + 1));
  const q = noFragment.indexOf("?");
  if (q < 0) return noFragment;
  const base = noFragment.slice(0, q);
  const query = noFragment.slice(q + 1);
  if (mode === "drop") {
    removed.push(...query.split("&"));
    return base;
  }
  const params = query.split("&").map((part) => {
    const eq = part.indexOf("=");
    // A bare part (`?abc123`) may itself be a credential, so only `name=` survives.
    if (eq < 0) {
      if (part !== "") removed.push(part);
      return part === "" ? part : REDACTED;
    }
    removed.push(part.slice(eq + 1));
    return `${part.slice(0, eq)}=${REDACTED}`;
  });
  return `${base}?${params.join("&")}`;
}

function redactScope(scope: PlainData | undefined, removed: string[]): PlainData {
  if (typeof scope !== "object" || scope === null || Array.isArray(scope)) return scope ?? null;
  const out: Record<string, PlainData> = {};
  for (const [k, v] of Object.entries(scope)) {
    if (typeof v === "string") removed.push(v);
    out[k] = REDACTED;
  }
  return out;
}

function redactArgv(argv: readonly string[], mode: "secrets" | "all" | "keep", httpQuery: "values" | "drop" | "keep", removed: string[]): string[] {
  if (mode === "keep") return [...argv];
  const [program = "", ...args] = argv;
  if (mode === "all") {
    removed.push(...args);
    return [program, ...args.map(() => REDACTED)];
  }
  const out = [program];
  let secretFollows = false;
  for (const arg of args) {
    if (secretFollows && !arg.startsWith("-")) {
      removed.push(arg);
      out.push(REDACTED);
      secretFollows = false;
      continue;
    }
    const redacted = redactArg(arg, httpQuery, removed);
    out.push(redacted.text);
    secretFollows = redacted.valueFollows;
  }
  return out;
}

/** One argument: `--name=value`, `Header: value`, `NAME=value`, a URL, or a bare `--name` whose value comes next. */
function redactArg(arg: string, httpQuery: "values" | "drop" | "keep", removed: string[]): { text: string; valueFollows: boolean } {
  const keep = { text: arg, valueFollows: false };
  if (/^https?:\/\//i.test(arg)) return { text: redactUrl(arg, httpQuery, removed), valueFollows: false };
  const assignment = /^(-{0,2}[A-Za-z0-9_.-]+)=(.*)$/s.exec(arg);
  if (assignment !== null) {
    const [, name = "", value = ""] = assignment;
    if (!SECRET_NAME.test(name)) return keep;
    removed.push(value);
    return { text: `${name}=${REDACTED}`, valueFollows: false };
  }
  const header = /^([A-Za-z0-9-]+):\s*(.*)$/s.exec(arg);
  if (header !== null) {
    const [, name = "", value = ""] = header;
    if (!SECRET_NAME.test(name)) return keep;
    removed.push(value);
    return { text: `${name}: ${REDACTED}`, valueFollows: false };
  }
  return { text: arg, valueFollows: /^-{1,2}[A-Za-z0-9_.-]+$/.test(arg) && SECRET_NAME.test(arg) };
}

/**
 * Free text (a denial reason, an error message) can quote a request, so the
 * values taken out of it are taken out of the text too, as written and as
 * JSON would escape them, and URL queries in the text are hidden unless the
 * policy keeps queries.
 */
function scrubText(text: string, removed: readonly string[], hideQueries: boolean): string {
  let out = hideQueries ? text.replace(/(https?:\/\/[^\s?#"'<>]*)\?[^\s#"'<>]*/gi, `$1?${REDACTED}`) : text;
  for (const value of removed) {
    // Short values (a port, "1", "id") would mangle ordinary words; they are not credentials either.
    if (value.length < 4) continue;
    out = out.split(value).join(REDACTED);
    const escaped = JSON.stringify(value).slice(1, -1);
    if (escaped !== value) out = out.split(escaped).join(REDACTED);
  }
  return out;
}
