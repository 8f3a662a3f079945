import { createHmac } from "node:crypto";
import { z } from "zod";
import { AgentcapError, AuditFailure, InvalidInput, type Request, type RowChanges, type Scalar } from "../kernel/index.js";
import { describeIssues, isLinkSummary, snapshotPlainData, type PlainData } from "../kernel/internal.js";
import { canonical } from "./canonical.js";

/** What replaces a redacted value in the log. */
export const REDACTED = "[redacted]";

/**
 * Which parts of a request reach the audit log. Tool outputs and tool inputs
 * never do (an event records only the canonical request and the size of the
 * result); this policy covers what a request itself can carry, and the
 * grants of the lineage links logged with it, which the dispatcher derives
 * from the very same requests (a row scope, a command's arguments). The defaults
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
   * Values of the rows a database write changed (recorded before and after,
   * already limited to what the writing capability may see). `"values"`
   * (default): field names stay, values become `[redacted]` (null stays
   * null). `"keep"`: logged as the capability sees them.
   */
  readonly dbRows?: "values" | "keep";
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
  /**
   * A secret of at least 16 bytes kept outside the log. With it, a redacted
   * value becomes `[redacted:<HMAC-SHA-256 of the value, 16 hex digits>]`, so
   * equal values still match across events (the same customer e-mail, the
   * same token) while the value itself stays out; without it, `[redacted]`.
   * Changing it (or the policy) starts a new log: lineage links already
   * logged would no longer encode the same.
   */
  readonly valueKey?: string | Uint8Array;
}

/** A request as the log stores it, and a scrubber that takes the same values out of free text about it. */
export interface Redacted {
  readonly request: Record<string, PlainData>;
  readonly scrub: (text: string) => string;
}

/** Applies a policy: to one request (already validated and snapshotted as plain data), and to a lineage link, which it encodes. */
export interface Redactor {
  readonly request: (request: Record<string, PlainData>) => Redacted;
  /** A link summary's canonical encoding with its grant redacted by the same rules (row-scope values, command arguments). */
  readonly linkText: (link: unknown) => string;
  /** A database write's changed rows, redacted by `dbRows`. */
  readonly changes: (changes: RowChanges) => RowChanges;
}

const SECRET_NAME = /pass|pwd|secret|token|key|auth|credential|cookie|signature|bearer|session|private/i;

const policySchema = z.strictObject({
  httpQuery: z.enum(["values", "drop", "keep"]).optional(),
  dbScope: z.enum(["values", "keep"]).optional(),
  dbRows: z.enum(["values", "keep"]).optional(),
  execArgs: z.enum(["secrets", "all", "keep"]).optional(),
  execEnv: z.enum(["keep", "drop"]).optional(),
  custom: z.custom<(request: Request) => Request>((v) => typeof v === "function", "must be a function").optional(),
  valueKey: z
    .union([z.string(), z.instanceof(Uint8Array)])
    .refine((k) => (typeof k === "string" ? Buffer.byteLength(k) : k.byteLength) >= 16, "must hold at least 16 bytes")
    .optional(),
});

type QueryMode = "values" | "drop" | "keep";

/** How one value is hidden, and the list of values hidden so far (to take out of free text too). */
interface Masker {
  readonly mask: (value: string) => string;
  readonly removed: string[];
  readonly httpQuery: QueryMode;
}

const LINK_TEXTS = 10_000;

/** Validates a policy (InvalidInput naming the bad field) and returns the redactor it describes. */
export function compileRedaction(policy: RedactionPolicy = {}): Redactor {
  const parsed = policySchema.safeParse(policy);
  if (!parsed.success) throw new InvalidInput(describeIssues("redaction policy", parsed.error));
  const { httpQuery = "values", dbScope = "values", dbRows = "values", execArgs = "secrets", execEnv = "keep", custom, valueKey } = parsed.data;
  const key = valueKey === undefined ? null : Buffer.from(valueKey);
  const mask = key === null ? () => REDACTED : (value: string) => `[redacted:${createHmac("sha256", key).update(value).digest("hex").slice(0, 16)}]`;
  const masker = (): Masker => ({ mask, removed: [], httpQuery });

  const request = (req: Record<string, PlainData>): Redacted => {
    const m = masker();
    const out: Record<string, PlainData> = { ...req };
    switch (req.action) {
      case "http.request":
        out.url = redactUrl(req.url as string, m);
        break;
      case "db.read":
      case "db.create":
      case "db.update":
      case "db.delete":
        if (dbScope === "values") out.scope = redactScope(req.scope, m);
        break;
      case "exec":
        out.argv = redactArgv(req.argv as string[], execArgs, m);
        if (execEnv === "drop") delete out.env;
        break;
    }
    return {
      request: custom === undefined ? out : applyCustom(custom, out),
      scrub: (text) => scrubText(text, m.removed, httpQuery !== "keep"),
    };
  };

  // Every call under a session repeats the session's ancestors: a link is redacted and encoded once,
  // remembered by identity when the kernel made it (it never changes), else by its JSON text.
  const known = new WeakMap<object, string>();
  const texts = new Map<string, string>();
  const linkText = (link: unknown): string => {
    if (isLinkSummary(link)) {
      let text = known.get(link);
      if (text === undefined) {
        text = canonical(redactLink(link, { dbScope, execArgs }, masker()));
        known.set(link, text);
      }
      return text;
    }
    const json = JSON.stringify(link);
    let text = texts.get(json);
    if (text === undefined) {
      text = canonical(redactLink(link, { dbScope, execArgs }, masker()));
      if (texts.size >= LINK_TEXTS) texts.clear();
      texts.set(json, text);
    }
    return text;
  };
  const hideRow = (row: Readonly<Record<string, Scalar>>) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v === null ? null : mask(typeof v === "string" ? v : JSON.stringify(v))]));
  const changes = (c: RowChanges): RowChanges => (dbRows === "keep" ? c : { before: c.before.map(hideRow), after: c.after.map(hideRow) });
  return Object.freeze({ request, linkText, changes });
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

type Data = Record<string, unknown>;
const isRecord = (v: unknown): v is Data => typeof v === "object" && v !== null && !Array.isArray(v);

/** A link summary with its grant's row scopes and command arguments redacted like a request's. */
type LinkPolicy = { readonly dbScope: "values" | "keep"; readonly execArgs: "secrets" | "all" | "keep" };

/** A link with its grant redacted, and the grant it observes in shadow, if any. */
function redactLink(link: unknown, policy: LinkPolicy, m: Masker): unknown {
  if (!isRecord(link)) return link;
  const out: Data = { ...link };
  if (isRecord(link.grant)) out.grant = redactGrant(link.grant, policy, m);
  if (isRecord(link.shadow)) out.shadow = redactGrant(link.shadow, policy, m);
  return out;
}

function redactGrant(given: Data, policy: LinkPolicy, m: Masker): Data {
  const grant: Data = { ...given };
  if (policy.dbScope === "values" && Array.isArray(grant.db)) {
    grant.db = grant.db.map((rule: unknown) => (isRecord(rule) && rule.scope !== undefined ? { ...rule, scope: redactScope(rule.scope as PlainData, m) } : rule));
  }
  if (policy.execArgs !== "keep" && Array.isArray(grant.exec)) {
    grant.exec = grant.exec.map((rule: unknown) => {
      if (!isRecord(rule) || !Array.isArray(rule.args)) return rule;
      const program = typeof rule.program === "string" ? rule.program : "";
      // Exact arguments are redacted as a command line would be; a prefix is redacted as if it were a whole argument.
      const strings = rule.args.map((a: unknown) => (typeof a === "string" ? a : isRecord(a) && typeof a.prefix === "string" ? a.prefix : ""));
      const redacted = redactArgv([program, ...strings], policy.execArgs, m).slice(1);
      const args = rule.args.map((a: unknown, i) => (typeof a === "string" ? redacted[i] : isRecord(a) && typeof a.prefix === "string" ? { ...a, prefix: redacted[i] } : a));
      return { ...rule, args };
    });
  }
  return grant;
}

function redactScope(scope: PlainData | undefined, m: Masker): PlainData {
  if (typeof scope !== "object" || scope === null || Array.isArray(scope)) return scope ?? null;
  const out: Record<string, PlainData> = {};
  for (const [k, v] of Object.entries(scope)) {
    const text = typeof v === "string" ? v : JSON.stringify(v);
    if (typeof v === "string") m.removed.push(v);
    out[k] = m.mask(text);
  }
  return out;
}

/** `value` hidden: recorded for the free-text scrub, and masked. */
function hide(value: string, m: Masker): string {
  if (value === "") return value;
  m.removed.push(value);
  return m.mask(value);
}

const SCHEME = /^[a-z][a-z0-9+.-]*:(?:[a-z][a-z0-9+.-]*:)?\/\//i;

/**
 * Redacts a URL of any scheme (http, postgres, mongodb+srv, jdbc:mysql…):
 * its userinfo always (up to the last `@` of the authority, so a password
 * holding `@` goes whole), its query values and fragment by `m.httpQuery`.
 */
function redactUrl(url: string, m: Masker): string {
  const scheme = SCHEME.exec(url);
  if (scheme === null) return url;
  const start = scheme[0].length;
  const authorityEnd = (() => {
    const i = url.slice(start).search(/[/?#]/);
    return i < 0 ? url.length : start + i;
  })();
  const at = url.lastIndexOf("@", authorityEnd - 1);
  let out = url;
  if (at >= start) out = `${url.slice(0, start)}${hide(url.slice(start, at), m)}${url.slice(at)}`;
  if (m.httpQuery === "keep") return out;
  const hashAt = out.indexOf("#");
  const noFragment = hashAt < 0 ? out : out.slice(0, hashAt);
  if (hashAt >= 0) m.removed.push(out.slice(hashAt + 1));
  const q = noFragment.indexOf("?");
  if (q < 0) return noFragment;
  const base = noFragment.slice(0, q);
  const query = noFragment.slice(q + 1);
  if (m.httpQuery === "drop") {
    m.removed.push(...query.split("&"));
    return base;
  }
  const params = query.split("&").map((part) => {
    const eq = part.indexOf("=");
    // A bare part (`?abc123`) may itself be a credential, so only `name=` survives.
    if (eq < 0) return part === "" ? part : hide(part, m);
    return `${part.slice(0, eq)}=${hide(part.slice(eq + 1), m)}`;
  });
  return `${base}?${params.join("&")}`;
}

/** Programs that take a password glued to `-p` (`mysql -pS3cret`). */
const GLUED_P = new Set(["mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mysqlcheck", "mysqlpump", "mariadb", "mariadb-dump", "mariadb-admin"]);
/** Programs whose `-p` is followed by a password (`sshpass -p S3cret`). */
const SPACED_P = new Set(["sshpass"]);
/** Flags whose next argument is `user:password` (curl, wget…). */
const USER_FLAGS = new Set(["-u", "--user", "-U", "--proxy-user", "--http-user"]);
/** Flags whose next argument is an HTTP header. */
const HEADER_FLAGS = new Set(["-H", "--header", "--proxy-header"]);

/** What the previous argument says about the next one. */
type Next = "value" | "secret" | "user" | "header";

function redactArgv(argv: readonly string[], mode: "secrets" | "all" | "keep", m: Masker): string[] {
  if (mode === "keep") return [...argv];
  const [program = "", ...args] = argv;
  if (mode === "all") return [program, ...args.map((a) => hide(a, m))];
  const name = program.slice(program.lastIndexOf("/") + 1);
  const out = [program];
  let next: Next = "value";
  for (const arg of args) {
    if (next !== "value" && !(next === "secret" && arg.startsWith("-") && arg.length > 1)) {
      out.push(next === "secret" ? redactSecret(arg, m) : next === "user" ? redactUser(arg, m) : (redactHeader(arg, m) ?? redactText(arg, m)));
      next = "value";
      continue;
    }
    next = "value";
    if (GLUED_P.has(name) && /^-p.+/s.test(arg)) {
      out.push(`-p${hide(arg.slice(2), m)}`);
      continue;
    }
    if (SPACED_P.has(name) && arg === "-p") {
      out.push(arg);
      next = "secret";
      continue;
    }
    if (USER_FLAGS.has(arg) || HEADER_FLAGS.has(arg)) {
      out.push(arg);
      next = USER_FLAGS.has(arg) ? "user" : "header";
      continue;
    }
    const glued = /^(-[HU])(.+)$/s.exec(arg) ?? /^(-u)(.+:.*)$/s.exec(arg);
    if (glued !== null) {
      const [, flag = "", value = ""] = glued;
      out.push(`${flag}${flag === "-H" ? (redactHeader(value, m) ?? redactText(value, m)) : redactUser(value, m)}`);
      continue;
    }
    if (/^-{1,2}[A-Za-z0-9_.-]+$/.test(arg) && SECRET_NAME.test(arg)) {
      out.push(arg);
      next = "secret";
      continue;
    }
    out.push(redactText(arg, m));
  }
  return out;
}

/** The value of a user flag: `user:password` with the password hidden, a URL redacted as one, a bare user name kept. */
function redactUser(value: string, m: Masker): string {
  if (SCHEME.test(value)) return redactUrl(value, m);
  const colon = value.indexOf(":");
  return colon < 0 ? value : `${value.slice(0, colon + 1)}${hide(value.slice(colon + 1), m)}`;
}

/** The value of a secret-named flag: hidden, but OpenSSL's `env:NAME` and `file:path` name where a secret is, not the secret. */
function redactSecret(value: string, m: Masker): string {
  if (/^(env|file|fd):/.test(value)) return value;
  if (value.startsWith("pass:")) return `pass:${hide(value.slice(5), m)}`;
  return hide(value, m);
}

/** `Name: value` with a secret-looking name (or any Authorization), its value hidden; null when `text` is not a header. */
function redactHeader(text: string, m: Masker): string | null {
  const header = /^([A-Za-z0-9-]+):[ \t]*(.*)$/s.exec(text);
  if (header === null) return null;
  const [, name = "", value = ""] = header;
  if (!SECRET_NAME.test(name)) return redactText(text, m);
  const scheme = /^(Bearer|Basic|Digest|Token|Negotiate|Bot)\s+/i.exec(value);
  return scheme === null ? `${name}: ${hide(value, m)}` : `${name}: ${scheme[0]}${hide(value.slice(scheme[0].length), m)}`;
}

/** Well-known shapes of credentials, hidden wherever they appear. */
const TOKEN_SHAPES =
  /\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|sk-[A-Za-z0-9_-]{16,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|npm_[A-Za-z0-9]{30,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})/g;
/** `password=…` and its kin inside connection strings (`host=db password=x`, `Server=x;Password=y;`). */
const KEYWORD_VALUE = /\b([A-Za-z_]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth)[A-Za-z_]*)(\s*=\s*)('[^']*'|"[^"]*"|[^\s;&]+)/gi;
/** A URL anywhere in a text. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:(?:[a-z][a-z0-9+.-]*:)?\/\/[^\s"'<>]+/gi;
/** An authorization scheme followed by its credential. */
const AUTH_SCHEME = /\b(Bearer|Basic|Token)(\s+)([A-Za-z0-9._~+/=-]{6,})/g;

/**
 * One argument (or any text): `--name=value` and `NAME=value` with a
 * secret-looking name, `Header: value`, URLs (userinfo, query), connection
 * strings, `pass:…` (OpenSSL), authorization schemes and well-known token
 * shapes, wherever they appear in it.
 */
function redactText(text: string, m: Masker): string {
  if (SCHEME.test(text)) return redactUrl(text, m);
  const assignment = /^(-{0,2}[A-Za-z0-9_.-]+)=(.*)$/s.exec(text);
  if (assignment !== null) {
    const [, name = "", value = ""] = assignment;
    if (USER_FLAGS.has(name)) return `${name}=${redactUser(value, m)}`;
    if (SECRET_NAME.test(name)) return `${name}=${hide(value, m)}`;
    // `--env=PASSWORD=x`, `--url=https://u:p@h`, `--header=Authorization: …`: the value is redacted as an argument of its own.
    return `${name}=${redactHeader(value, m) ?? redactText(value, m)}`;
  }
  const header = /^[A-Za-z0-9-]+:\s/.test(text) ? redactHeader(text, m) : null;
  if (header !== null) return header;
  if (/^pass:/.test(text)) return `pass:${hide(text.slice(5), m)}`;
  return text
    .replace(URL_IN_TEXT, (url) => redactUrl(url, m))
    .replace(KEYWORD_VALUE, (_all, name: string, eq: string, value: string) => `${name}${eq}${hide(value, m)}`)
    .replace(AUTH_SCHEME, (_all, scheme: string, space: string, value: string) => `${scheme}${space}${hide(value, m)}`)
    .replace(TOKEN_SHAPES, (token) => hide(token, m));
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
