/**
 * Grants compiled to Biscuit Datalog checks, and canonical kernel requests
 * turned into the facts those checks read. The two are written together so
 * that, for every request, the checks of a link hold exactly when the
 * kernel's matcher (src/kernel/rules.ts) allows it; the differential test in
 * test/token proves it.
 *
 * Strings always travel as parameters, never spliced into source. Only
 * enumerated values (operations, methods) appear literally. Sets of names (db
 * fields, env names) are sets of byte strings: Biscuit orders a set of
 * strings by symbol number, which depends on the token, so a block's printing
 * would not be reproducible; byte strings order by value everywhere.
 *
 * Time is an integer count of milliseconds since the epoch, the kernel's unit,
 * so `time($t)` expiry agrees with the kernel to the millisecond.
 */
import { actionKey, addressBits, addressRangeBits, classifyAddress, ruleKey, isIpLiteral, unbracket, type CheckedRequest } from "../kernel/internal.js";
import {
  InvalidInput,
  type ApprovalRule,
  type ArgPattern,
  type DbRule,
  type ExecRule,
  type FsRule,
  type Grant,
  type HttpRule,
  type LinkConditions,
  type RevokeRule,
} from "../kernel/index.js";
import type { DatalogCode } from "./biscuit.js";

/** What one compiled check enforces: the kernel rule name a failure of it stands for. */
export type CheckKind = "expiresAt" | "tenants" | "domains" | "approval";

type Params = Record<string, string | number | boolean>;

/** Adds `value` as a fresh parameter and returns its placeholder. */
function param(params: Params, value: string | number | boolean): string {
  const name = `p${Object.keys(params).length}`;
  params[name] = value;
  return `{${name}}`;
}

/** One name as a byte string literal (its UTF-8, in hex). */
function nameItem(value: string): string {
  return `hex:${Buffer.from(value, "utf8").toString("hex")}`;
}

/** A set of names as a literal set of byte strings. */
function nameSet(values: Iterable<string>): string {
  const items = [...new Set(values)].map(nameItem);
  // The spaces keep `{hex:…}` from reading as a parameter named "hex:…".
  return items.length === 0 ? "{,}" : `{ ${items.join(", ")} }`;
}

/** A set literal of items already written as literals. */
function setOf(items: readonly string[]): string {
  const unique = [...new Set(items)];
  return unique.length === 0 ? "{,}" : `{ ${unique.join(", ")} }`;
}

/** A scalar's JSON text as a bytes literal: hex digits only, safe to write into the source. */
function jsonBytes(value: unknown): string {
  return `hex:${Buffer.from(JSON.stringify(value), "utf8").toString("hex")}`;
}

/** `$v` is one of `values`, enum members known to be plain words. */
function oneOf(v: string, values: readonly string[]): string {
  return [...new Set(values)].map((x) => `${v} == "${x}"`).join(" || ");
}

/** `$v` is `base` or lies below it on whole path components, as kernel `isWithin`. Empty when everything qualifies. */
function within(params: Params, v: string, base: string): string {
  if (base === "/") return "";
  return `${v} == ${param(params, base)} || ${v}.starts_with(${param(params, `${base}/`)})`;
}

/** `$v` has URL path prefix `prefix`, as kernel `pathHasPrefix`. */
function hasPrefix(params: Params, v: string, prefix: string): string {
  if (prefix.endsWith("/")) return `${v}.starts_with(${param(params, prefix)})`;
  return `${v} == ${param(params, prefix)} || ${v}.starts_with(${param(params, `${prefix}/`)})`;
}

const own = <T extends object, K extends keyof T>(o: T, k: K): T[K] | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);

function fsBody(params: Params, r: FsRule): string {
  const parts = [`fs_op($o), ${oneOf("$o", r.ops)}`, "path($p)"];
  const cond = (own(r, "subtree") ?? true) ? within(params, "$p", r.path) : `$p == ${param(params, r.path)}`;
  if (cond !== "") parts.push(cond);
  return parts.join(", ");
}

function httpBody(params: Params, r: HttpRule): string {
  const parts = [
    `http_method($m), ${oneOf("$m", r.methods)}`,
    `origin(${param(params, r.origin)})`,
    "url_path($u)",
    hasPrefix(params, "$u", own(r, "pathPrefix") ?? "/"),
  ];
  const addresses = own(r, "addresses");
  if (addresses !== undefined) {
    // An address is in a range when its bit string starts with the range's (see kernel address.ts); "" stands for a name not yet resolved.
    const ranges = addresses.map((range) => `$b.starts_with(${param(params, addressRangeBits(range))})`);
    parts.push(`http_bits($b), $b == "" || ${ranges.join(" || ")}`);
  } else if (!(own(r, "allowPrivateNetwork") ?? false)) {
    const host = unbracket(new URL(r.origin).hostname);
    parts.push(isIpLiteral(host) ? `http_public($pub), http_address($a), $pub || $a == ${param(params, host)}` : "http_public(true)");
  }
  return parts.join(", ");
}

/** One byte string naming a field and how it is shown, as a request's `db_views` set holds them. */
function viewItem(field: string, key: string): string {
  return nameItem(`${field}\0${key}`);
}

/**
 * The field conditions of a db rule. Fields used whole (`db_fields`) must be
 * reached with action "allow"; fields returned otherwise (`db_viewed`, each
 * with its view in `db_views`) must be reached with an action at or above
 * their view, written out per field whose action is not "allow" (a rule
 * names finitely many), as the kernel's matcher checks them.
 */
function dbFieldParts(r: DbRule): string[] {
  const fields = own(r, "fields");
  const actions = Object.entries(own(r, "fieldActions") ?? {})
    .map(([f, a]) => [f, actionKey(a)] as const)
    .filter(([f, a]) => a !== "allow" && (fields === undefined || fields.includes(f)));
  if (fields === undefined && actions.length === 0) return [];
  const notAllowed = new Set(actions.map(([f]) => f));
  const denied = new Set(actions.filter(([, a]) => a === "deny").map(([f]) => f));
  const parts: string[] = [];
  if (fields !== undefined) {
    parts.push(`db_fields($f), ${nameSet(fields.filter((f) => !notAllowed.has(f)))}.contains($f)`);
    parts.push(`db_viewed($v), ${nameSet(fields.filter((f) => !denied.has(f)))}.contains($v)`);
  } else {
    parts.push(`db_fields($f)`, ...[...notAllowed].map((f) => `!$f.contains(${nameItem(f)})`));
    parts.push(`db_viewed($v)`, ...[...denied].map((f) => `!$v.contains(${nameItem(f)})`));
  }
  const shown = actions.filter(([, a]) => a !== "deny");
  if (shown.length > 0) {
    parts.push("db_views($w)");
    for (const [f, a] of shown) {
      const views = a === "redact" ? [a] : [a, "redact"];
      parts.push(`(!$v.contains(${nameItem(f)}) || ${views.map((view) => `$w.contains(${viewItem(f, view)})`).join(" || ")})`);
    }
  }
  return parts;
}

function dbBody(params: Params, r: DbRule): string {
  const parts = [`db_op($o), ${oneOf("$o", r.ops)}`, `model(${param(params, r.model)})`, ...dbFieldParts(r)];
  for (const [k, v] of Object.entries(own(r, "scope") ?? {})) {
    // Scope values are compared as the bytes of their JSON text (equal exactly when the scalars are strictly equal); bytes, since a string's JSON holds quotes.
    parts.push(`db_scope(${param(params, k)}, ${jsonBytes(v)})`);
  }
  const rows = own(r, "rows");
  // A row rule travels as the bytes of its canonical JSON, as the request's db_rows set holds the rules it is confined by.
  if (rows !== undefined) parts.push(`db_rows($r), $r.contains(${nameItem(ruleKey(rows))})`);
  const maxRows = own(r, "maxRows");
  // A request without a limit has no db_limit fact, so a rule with maxRows refuses it, as the kernel does.
  if (maxRows !== undefined) parts.push(`db_limit($n), $n <= ${param(params, maxRows)}`);
  return parts.join(", ");
}

function argBody(params: Params, pattern: ArgPattern, i: number): string | null {
  if (typeof pattern === "string") return `exec_arg(${i}, ${param(params, pattern)})`;
  if (Object.hasOwn(pattern, "prefix")) return `exec_arg(${i}, $a${i}), $a${i}.starts_with(${param(params, (pattern as { prefix: string }).prefix)})`;
  return null;
}

function execBody(params: Params, r: ExecRule): string {
  const parts = [`exec_program(${param(params, r.program)})`];
  const cwd = own(r, "cwd");
  if (cwd !== undefined) {
    const cond = within(params, "$c", cwd);
    if (cond !== "") parts.push(`exec_cwd($c), ${cond}`);
  }
  parts.push(`exec_env($e), ${nameSet(own(r, "env") ?? [])}.contains($e)`);
  const args = own(r, "args");
  if (args !== undefined) {
    parts.push(`exec_argc($n), $n ${(own(r, "allowExtraArgs") ?? false) ? ">=" : "=="} ${args.length}`);
    args.forEach((p, i) => {
      const body = argBody(params, p, i);
      if (body !== null) parts.push(body);
    });
  }
  return parts.join(", ");
}

function revokeBody(r: RevokeRule): string {
  // The target kind is an enum member, a plain word; ids are a set of byte strings, as db fields are.
  const parts = [`revoke_target("${r.target}")`];
  const ids = own(r, "ids");
  if (ids !== undefined) parts.push(`revoke_id($i), ${nameSet(ids)}.contains($i)`);
  return parts.join(", ");
}

/** The alternatives of a grant's domain check: the request is allowed when one of them holds. */
function domainBodies(params: Params, grant: Grant): string[] {
  const bodies: string[] = [];
  for (const tool of own(grant, "tools") ?? []) bodies.push(`tool(${param(params, tool)})`);
  for (const r of own(grant, "fs") ?? []) bodies.push(fsBody(params, r));
  for (const r of own(grant, "http") ?? []) bodies.push(httpBody(params, r));
  for (const r of own(grant, "db") ?? []) bodies.push(dbBody(params, r));
  for (const r of own(grant, "exec") ?? []) bodies.push(execBody(params, r));
  for (const r of own(grant, "revoke") ?? []) bodies.push(revokeBody(r));
  const audit = own(grant, "audit");
  if (audit !== undefined) bodies.push(`audit_op($o), ${oneOf("$o", audit)}`);
  return bodies;
}

/** What each action an approval rule names looks like in a request's facts. */
const ACTION_FACTS: Readonly<Record<string, string>> = {
  "tool.call": "tool($x)",
  "fs.read": 'fs_op("read")',
  "fs.write": 'fs_op("write")',
  "fs.list": 'fs_op("list")',
  "fs.delete": 'fs_op("delete")',
  "http.request": "http_method($x)",
  "db.read": 'db_op("read")',
  "db.create": 'db_op("create")',
  "db.update": 'db_op("update")',
  "db.delete": 'db_op("delete")',
  exec: "exec_program($x)",
  revoke: "revoke_target($x)",
  "audit.read": 'audit_op("read")',
};

/**
 * The requests an approval rule asks approval for, as bodies of `reject if`:
 * a token carries no approval (one is made in the verifying process, bound to
 * one call, and never serialized), so Biscuit refuses every request a rule
 * names. Argument patterns are not in a request's facts: a rule with them
 * refuses as the kernel does when it decides without the arguments.
 */
function approvalBodies(params: Params, rule: ApprovalRule): string[] {
  const bodies = (own(rule, "tools") ?? []).map((tool) => `tool(${param(params, tool)})`);
  for (const action of new Set(own(rule, "actions") ?? [])) bodies.push(ACTION_FACTS[action] as string);
  return bodies;
}

/**
 * Appends to `lines` the checks of one link: expiry, tenants, then (for a link
 * with a grant) one check whose alternatives are the grant's rules, and one
 * `reject if` per request kind its approval rules name. Returns
 * what each check enforces. `maxUses`, `budget` and `rates` are stateful and
 * are enforced against the token store, not here.
 */
export function compileLinkChecks(grant: Grant | null, conditions: LinkConditions, params: Params, lines: string[]): CheckKind[] {
  const kinds: CheckKind[] = [];
  const expiresAt = own(conditions, "expiresAt");
  if (expiresAt !== undefined) {
    lines.push(`check if time($t), $t < ${param(params, expiresAt)};`);
    kinds.push("expiresAt");
  }
  const tenants = own(conditions, "tenants");
  if (tenants !== undefined) {
    lines.push(`check if ${tenants.map((t) => `tenant(${param(params, t)})`).join(" or ")};`);
    kinds.push("tenants");
  }
  if (grant !== null) {
    const bodies = domainBodies(params, grant);
    // A grant that names no rule allows nothing.
    lines.push(`check if ${bodies.length === 0 ? "false" : bodies.join(" or ")};`);
    kinds.push("domains");
    for (const rule of own(grant, "approval") ?? []) {
      for (const body of approvalBodies(params, rule)) {
        lines.push(`reject if ${body};`);
        kinds.push("approval");
      }
    }
  }
  return kinds;
}

function wellFormed(value: string, what: string): string {
  if (!value.isWellFormed()) throw new InvalidInput(`request ${what} is not well-formed Unicode (it has a lone surrogate)`);
  return value;
}

/** The facts a canonical request gives Biscuit's authorizer, with `time` set to `now` (ms since the epoch). */
export function requestFacts(req: CheckedRequest, now: number): DatalogCode {
  const params: Params = {};
  const s = (v: string, what: string) => param(params, wellFormed(v, what));
  const facts = [`time(${param(params, now)})`];
  if (req.tenant !== null) facts.push(`tenant(${s(req.tenant, "tenant")})`);
  switch (req.kind) {
    case "tool":
      facts.push(`tool(${s(req.tool, "tool")})`);
      break;
    case "fs":
      facts.push(`fs_op("${req.op}")`, `path(${s(req.path, "path")})`);
      break;
    case "http": {
      const host = unbracket(req.url.hostname);
      const target = req.address ?? (isIpLiteral(host) ? host : null);
      const isPublic = target === null || classifyAddress(target) === "public";
      facts.push(
        `http_method("${req.method}")`,
        `origin(${s(req.url.origin, "origin")})`,
        `url_path(${s(req.url.pathname, "path")})`,
        `http_public(${String(isPublic)})`,
        `http_address(${s(target ?? "", "address")})`,
        // A target that is not an address gets bits no range starts with.
        `http_bits(${s(target === null ? "" : (addressBits(target) ?? "-"), "address")})`,
      );
      break;
    }
    case "db":
      facts.push(`db_op("${req.op}")`, `model(${s(req.model, "model")})`, `db_fields(${nameSet(req.fields)})`);
      if (req.limit !== null) facts.push(`db_limit(${param(params, req.limit)})`);
      facts.push(`db_rows(${nameSet(req.rows)})`, `db_viewed(${nameSet(req.views.keys())})`, `db_views(${setOf([...req.views].map(([f, v]) => viewItem(f, v)))})`);
      for (const [k, v] of req.scope) facts.push(`db_scope(${s(k, "scope key")}, ${jsonBytes(v)})`);
      break;
    case "exec": {
      const [program = "", ...args] = req.argv;
      facts.push(`exec_program(${s(program, "program")})`, `exec_cwd(${s(req.cwd, "cwd")})`, `exec_env(${nameSet(req.env)})`);
      facts.push(`exec_argc(${param(params, args.length)})`);
      args.forEach((a, i) => facts.push(`exec_arg(${i}, ${s(a, "argument")})`));
      break;
    }
    case "revoke":
      facts.push(`revoke_target("${req.target}")`, `revoke_id(${nameSet([wellFormed(req.id, "id")])})`);
      break;
    case "audit":
      facts.push(`audit_op("${req.op}")`);
      break;
  }
  return { source: facts.map((f) => `${f};`).join("\n"), params };
}
