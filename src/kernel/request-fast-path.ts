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
const KEYS = {
  tool: new Set(["action", "tool", "tenant"]),
  fs: new Set(["action", "path", "tenant"]),
  http: new Set(["action", "method", "url", "tenant"]),
  db: new Set(["action", "model", "fields", "scope", "views", "limit", "tenant"]),
  exec: new Set(["action", "argv", "cwd", "env", "tenant"]),
  audit: new Set(["action", "tenant"]),
};

type Fields = Record<string, unknown>;

function plainObject(v: unknown): v is Fields {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function onlyKeys(v: Fields, allowed: ReadonlySet<string>): boolean {
  for (const k of Object.keys(v)) if (!allowed.has(k)) return false;
  return true;
}

const own = (v: Fields, k: string): unknown => (Object.hasOwn(v, k) ? v[k] : undefined);

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

/** The checked request when `value` is well-formed and simple; null means "ask the schema". */
export function fastCheckRequest(value: unknown): CheckedRequest | null {
  if (!plainObject(value)) return null;
  const action = own(value, "action");
  const rawTenant = own(value, "tenant");
  if (rawTenant !== undefined && !isName(rawTenant)) return null;
  const tenant = rawTenant ?? null;
  if (action === "tool.call") {
    const tool = own(value, "tool");
    if (!onlyKeys(value, KEYS.tool) || !isName(tool)) return null;
    return { kind: "tool", action, tenant, tool };
  }
  if (action === "audit.read") return onlyKeys(value, KEYS.audit) ? { kind: "audit", action, tenant, op: "read" } : null;
  if (typeof action !== "string") return null;
  const fsOp = FS_OPS[action];
  if (fsOp !== undefined) {
    const path = own(value, "path");
    if (!onlyKeys(value, KEYS.fs) || typeof path !== "string" || absolutePathProblem(path) !== undefined) return null;
    return { kind: "fs", action: action as "fs.read", tenant, op: fsOp, path };
  }
  const dbOp = DB_OPS[action];
  if (dbOp !== undefined) {
    const model = own(value, "model");
    if (!onlyKeys(value, KEYS.db) || !isIdentifier(model)) return null;
    const fields = copyArray(own(value, "fields"), REQUEST_LIMITS.fields, isIdentifier);
    const scope = copyScope(own(value, "scope"));
    const rawViews = own(value, "views");
    const views = rawViews === undefined ? NO_VIEWS : copyViews(rawViews);
    const limit = own(value, "limit");
    if (fields === null || scope === null || views === null) return null;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && (limit as number) >= 1)) return null;
    return { kind: "db", action: action as "db.read", tenant, op: dbOp, model, fields, scope, views, rows: NO_ROWS, limit: (limit as number | undefined) ?? null };
  }
  if (action === "http.request") {
    // Requests carrying a resolved address go to the schema, whose IP grammar is the reference.
    const method = own(value, "method");
    const url = own(value, "url");
    if (!onlyKeys(value, KEYS.http) || typeof method !== "string" || !HTTP_METHOD_SET.has(method)) return null;
    if (typeof url !== "string" || url.length > REQUEST_LIMITS.url) return null;
    return { kind: "http", action, tenant, method: method as "GET", url: canonicalHttpUrl(url), address: null };
  }
  if (action === "exec") {
    const cwd = own(value, "cwd");
    if (!onlyKeys(value, KEYS.exec) || typeof cwd !== "string" || absolutePathProblem(cwd) !== undefined) return null;
    const argv = copyArray(own(value, "argv"), REQUEST_LIMITS.argv, isArg);
    // A program path that is not absolute is refused by the checked form, which words the error.
    if (argv === null || argv.length === 0 || absolutePathProblem(argv[0] as string) !== undefined) return null;
    const rawEnv = own(value, "env");
    const env = rawEnv === undefined ? [] : copyArray(rawEnv, Number.MAX_SAFE_INTEGER, isEnvName);
    if (env === null) return null;
    return { kind: "exec", action, tenant, argv, cwd, env };
  }
  return null;
}
