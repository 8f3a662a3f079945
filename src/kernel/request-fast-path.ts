import { absolutePathProblem } from "./canonical-forms.js";
import type { Scalar } from "./grant.js";
import { MASK_PATTERN, type FieldView } from "./field-actions.js";
import { ENV_NAME, isIdentifierText, REQUEST_LIMITS } from "./names.js";
import type { ParsedRequest } from "./request.js";
import { defined } from "./defined.js";

/*
 * Request validation is on every check's path, and the zod schemas cost
 * several microseconds for a database request. This module accepts the
 * common, well-formed requests by hand and returns null for anything else,
 * so the schemas stay the single judge of what is rejected and how the error
 * reads. It must never accept what the schemas reject; a property test
 * compares the two.
 */

const FS_ACTIONS = new Set(["fs.read", "fs.write", "fs.list", "fs.delete"]);
const DB_ACTIONS = new Set(["db.read", "db.create", "db.update", "db.delete"]);
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

function copyScope(v: unknown): Record<string, Scalar> | null {
  if (!plainObject(v)) return null;
  const out: Record<string, Scalar> = {};
  for (const k of Object.keys(v)) {
    const x = v[k];
    if (!isIdentifierText(k) || !isScalar(x)) return null;
    out[k] = x;
  }
  return out;
}

function copyViews(v: unknown): Record<string, FieldView> | null {
  if (!plainObject(v)) return null;
  const out: Record<string, FieldView> = {};
  for (const k of Object.keys(v)) {
    const x = v[k];
    if (!isIdentifierText(k)) return null;
    if (x === "hash" || x === "redact") out[k] = x;
    else if (plainObject(x) && Object.keys(x).length === 1 && Object.hasOwn(x, "mask") && typeof x.mask === "string" && MASK_PATTERN.test(x.mask)) out[k] = { mask: x.mask };
    else return null;
  }
  return out;
}

/** `parsed` with `tenant` set when the request names one (an absent key, never an undefined one, as the schema leaves it). */
function withTenant<T extends ParsedRequest>(parsed: T, tenant: string | undefined): T {
  if (tenant !== undefined) (parsed as { tenant?: string }).tenant = tenant;
  return parsed;
}

/** The parsed request when `value` is well-formed and simple; null means "ask the schema". */
export function fastParseRequest(value: unknown): ParsedRequest | null {
  if (!plainObject(value)) return null;
  const action = own(value, "action");
  const tenant = own(value, "tenant");
  if (tenant !== undefined && !isName(tenant)) return null;
  if (action === "tool.call") {
    const tool = own(value, "tool");
    if (!onlyKeys(value, KEYS.tool) || !isName(tool)) return null;
    return withTenant({ action, tool }, tenant);
  }
  if (action === "audit.read") return onlyKeys(value, KEYS.audit) ? withTenant({ action }, tenant) : null;
  if (typeof action !== "string") return null;
  if (FS_ACTIONS.has(action)) {
    const path = own(value, "path");
    if (!onlyKeys(value, KEYS.fs) || typeof path !== "string" || absolutePathProblem(path) !== undefined) return null;
    return withTenant({ action: action as "fs.read", path }, tenant);
  }
  if (DB_ACTIONS.has(action)) {
    const model = own(value, "model");
    if (!onlyKeys(value, KEYS.db) || !isIdentifier(model)) return null;
    const fields = copyArray(own(value, "fields"), REQUEST_LIMITS.fields, isIdentifier);
    const scope = copyScope(own(value, "scope"));
    const rawViews = own(value, "views");
    const views = rawViews === undefined ? undefined : copyViews(rawViews);
    const limit = own(value, "limit");
    if (fields === null || scope === null || views === null) return null;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && (limit as number) >= 1)) return null;
    const parsed: ParsedRequest & { views?: Record<string, FieldView>; limit?: number } = { action: action as "db.read", model, fields, scope };
    if (views !== undefined) parsed.views = views;
    if (limit !== undefined) parsed.limit = limit as number;
    return withTenant(parsed, tenant);
  }
  if (action === "http.request") {
    // Requests carrying a resolved address go to the schema, whose IP grammar is the reference.
    const method = own(value, "method");
    const url = own(value, "url");
    if (!onlyKeys(value, KEYS.http) || typeof method !== "string" || !HTTP_METHOD_SET.has(method)) return null;
    if (typeof url !== "string" || url.length > REQUEST_LIMITS.url) return null;
    return withTenant({ action, method: method as "GET", url }, tenant);
  }
  if (action === "exec") {
    const cwd = own(value, "cwd");
    if (!onlyKeys(value, KEYS.exec) || typeof cwd !== "string" || absolutePathProblem(cwd) !== undefined) return null;
    const argv = copyArray(own(value, "argv"), REQUEST_LIMITS.argv, isArg);
    if (argv === null || argv.length === 0) return null;
    const rawEnv = own(value, "env");
    const env = rawEnv === undefined ? undefined : copyArray(rawEnv, Number.MAX_SAFE_INTEGER, isEnvName);
    if (env === null) return null;
    return withTenant({ action, argv, cwd, ...defined({ env }) }, tenant);
  }
  return null;
}
