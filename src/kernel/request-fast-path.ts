import { absolutePathProblem, canonicalHttpUrl } from "./canonical-forms.js";
import type { Scalar } from "./grant.js";
import { actionKey, MASK_PATTERN } from "./field-actions.js";
import { ENV_NAME, isIdentifierText, REQUEST_LIMITS } from "./names.js";
import type { CheckedRequest } from "./request.js";

/*
 * Request validation is on every check's path, and the zod schemas cost
 * several microseconds for a database request. This module accepts the
 * common, well-formed requests by hand, straight into the checked form the
 * matcher reads, and returns null for anything else, so the schemas stay the
 * single judge of what is rejected and how the error reads. It must never
 * accept what the schemas reject, nor build anything different; a property
 * test compares the two.
 */

/** The operation each file and database action names, looked up by own property only. */
const FS_OPS: Readonly<Record<string, string>> = Object.freeze(Object.assign(Object.create(null) as Record<string, string>, { "fs.read": "read", "fs.write": "write", "fs.list": "list", "fs.delete": "delete" }));
const DB_OPS: Readonly<Record<string, string>> = Object.freeze(Object.assign(Object.create(null) as Record<string, string>, { "db.read": "read", "db.create": "create", "db.update": "update", "db.delete": "delete" }));
const HTTP_METHOD_SET = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

type Fields = Record<string, unknown>;

function plainObject(v: unknown): v is Fields {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}



const isName = (v: unknown): v is string => typeof v === "string" && v.length >= 1 && v.length <= REQUEST_LIMITS.name;

/** A copy of a plain array whose every element passes `ok`, or null. */
function copyArray<T>(v: unknown, max: number, ok: (x: unknown) => x is T): T[] | null {
  if (!Array.isArray(v) || Object.getPrototypeOf(v) !== Array.prototype) return null;
  const length = v.length;
  if (length > max) return null;
  const out = new Array<T>(length);
  for (let i = 0; i < length; i++) {
    if (!Object.hasOwn(v, i)) return null;
    const x: unknown = v[i];
    if (!ok(x)) return null;
    out[i] = x;
  }
  return out;
}

const isIdentifier = (x: unknown): x is string => typeof x === "string" && isIdentifierText(x);
const isEnvName = (x: unknown): x is string => typeof x === "string" && ENV_NAME.test(x);
const isArg = (x: unknown): x is string => typeof x === "string" && !x.includes("\0");
const isScalar = (x: unknown): x is Scalar =>
  x === null || typeof x === "string" || typeof x === "boolean" || (typeof x === "number" && Number.isFinite(x));

function copyScope(v: unknown): Map<string, Scalar> | null {
  if (!plainObject(v)) return null;
  const out = new Map<string, Scalar>();
  for (const k of Object.keys(v)) {
    const x = v[k];
    if (!isIdentifierText(k) || !isScalar(x)) return null;
    out.set(k, x);
  }
  return out;
}

/** Each view as actionKey writes it. */
function copyViews(v: unknown): Map<string, string> | null {
  if (!plainObject(v)) return null;
  const out = new Map<string, string>();
  for (const k of Object.keys(v)) {
    const x = v[k];
    if (!isIdentifierText(k)) return null;
    if (x === "hash" || x === "redact") out.set(k, x);
    else if (plainObject(x) && Object.keys(x).length === 1 && Object.hasOwn(x, "mask") && typeof x.mask === "string" && MASK_PATTERN.test(x.mask)) out.set(k, actionKey({ mask: x.mask }));
    else return null;
  }
  return out;
}

/** The views of a request that names none, and the row rules of one that names none: nothing writes to a checked request's collections. */
export const NO_VIEWS: ReadonlyMap<string, string> = new Map();
export const NO_ROWS: ReadonlySet<string> = new Set();

/** One bit per request field the fast path reads, so a pass over the keys notes which it saw. */
const ACTION = 1;
const TENANT = 2;
const TOOL = 4;
const PATH = 8;
const METHOD = 16;
const URL_FIELD = 32;
const MODEL = 64;
const FIELDS = 128;
const SCOPE = 256;
const VIEWS = 512;
const LIMIT = 1024;
const ARGV = 2048;
const CWD = 4096;
const ENV = 8192;

/** The fields each kind of request may have on this path. */
const TOOL_FIELDS = ACTION | TENANT | TOOL;
const AUDIT_FIELDS = ACTION | TENANT;
const FS_FIELDS = ACTION | TENANT | PATH;
const DB_FIELDS = ACTION | TENANT | MODEL | FIELDS | SCOPE | VIEWS | LIMIT;
const HTTP_FIELDS = ACTION | TENANT | METHOD | URL_FIELD;
const EXEC_FIELDS = ACTION | TENANT | ARGV | CWD | ENV;

/**
 * The checked request when `value` is well-formed and simple; null means
 * "ask the schema". One pass over the own enumerable keys reads each field
 * once; a key it does not know (an unknown one, or one the schema alone
 * checks: rows, address) sends the request to the schema, and so does an
 * own property that is not enumerable, which the schema reads and the pass
 * would not see.
 */
export function fastCheckRequest(value: unknown): CheckedRequest | null {
  if (!plainObject(value)) return null;
  const keys = Object.keys(value);
  let seen = 0;
  let action: unknown, rawTenant: unknown, tool: unknown, path: unknown, method: unknown, url: unknown, model: unknown;
  let rawFields: unknown, rawScope: unknown, rawViews: unknown, limit: unknown, rawArgv: unknown, cwd: unknown, rawEnv: unknown;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    const x = value[k];
    switch (k) {
      case "action":
        action = x;
        seen |= ACTION;
        break;
      case "tenant":
        rawTenant = x;
        seen |= TENANT;
        break;
      case "tool":
        tool = x;
        seen |= TOOL;
        break;
      case "path":
        path = x;
        seen |= PATH;
        break;
      case "method":
        method = x;
        seen |= METHOD;
        break;
      case "url":
        url = x;
        seen |= URL_FIELD;
        break;
      case "model":
        model = x;
        seen |= MODEL;
        break;
      case "fields":
        rawFields = x;
        seen |= FIELDS;
        break;
      case "scope":
        rawScope = x;
        seen |= SCOPE;
        break;
      case "views":
        rawViews = x;
        seen |= VIEWS;
        break;
      case "limit":
        limit = x;
        seen |= LIMIT;
        break;
      case "argv":
        rawArgv = x;
        seen |= ARGV;
        break;
      case "cwd":
        cwd = x;
        seen |= CWD;
        break;
      case "env":
        rawEnv = x;
        seen |= ENV;
        break;
      default:
        return null;
    }
  }
  if (Object.getOwnPropertyNames(value).length !== keys.length) return null;
  if (rawTenant !== undefined && !isName(rawTenant)) return null;
  const tenant = rawTenant ?? null;
  if (action === "tool.call") {
    if ((seen & ~TOOL_FIELDS) !== 0 || !isName(tool)) return null;
    return { kind: "tool", action, tenant, tool };
  }
  if (action === "audit.read") return (seen & ~AUDIT_FIELDS) === 0 ? { kind: "audit", action, tenant, op: "read" } : null;
  if (typeof action !== "string") return null;
  const dbOp = DB_OPS[action];
  if (dbOp !== undefined) {
    if ((seen & ~DB_FIELDS) !== 0 || !isIdentifier(model)) return null;
    const fields = copyArray(rawFields, REQUEST_LIMITS.fields, isIdentifier);
    const scope = copyScope(rawScope);
    const views = rawViews === undefined ? NO_VIEWS : copyViews(rawViews);
    if (fields === null || scope === null || views === null) return null;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && (limit as number) >= 1)) return null;
    return { kind: "db", action: action as "db.read", tenant, op: dbOp, model, fields, scope, views, rows: NO_ROWS, limit: (limit as number | undefined) ?? null, include: null };
  }
  const fsOp = FS_OPS[action];
  if (fsOp !== undefined) {
    if ((seen & ~FS_FIELDS) !== 0 || typeof path !== "string" || absolutePathProblem(path) !== undefined) return null;
    return { kind: "fs", action: action as "fs.read", tenant, op: fsOp, path };
  }
  if (action === "http.request") {
    // Requests carrying a resolved address go to the schema, whose IP grammar is the reference.
    if ((seen & ~HTTP_FIELDS) !== 0 || typeof method !== "string" || !HTTP_METHOD_SET.has(method)) return null;
    if (typeof url !== "string" || url.length > REQUEST_LIMITS.url) return null;
    return { kind: "http", action, tenant, method: method as "GET", url: canonicalHttpUrl(url), address: null };
  }
  if (action === "exec") {
    if ((seen & ~EXEC_FIELDS) !== 0 || typeof cwd !== "string" || absolutePathProblem(cwd) !== undefined) return null;
    const argv = copyArray(rawArgv, REQUEST_LIMITS.argv, isArg);
    // A program path that is not absolute is refused by the checked form, which words the error.
    if (argv === null || argv.length === 0 || absolutePathProblem(argv[0] as string) !== undefined) return null;
    const env = rawEnv === undefined ? [] : copyArray(rawEnv, Number.MAX_SAFE_INTEGER, isEnvName);
    if (env === null) return null;
    return { kind: "exec", action, tenant, argv, cwd, env };
  }
  return null;
}
