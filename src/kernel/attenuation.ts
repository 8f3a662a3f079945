import { clockTime, innermostGrant, narrow, restrict, type Capability } from "./capability.js";
import { InvalidInput } from "./errors.js";
import { DB_OPS, type DbOp, type Grant, type Scalar } from "./grant.js";
import type { Meet } from "./reach.js";
import { defined } from "./defined.js";

/*
 * Shorthands for the narrowings the articles use most. Each is an ordinary
 * `narrow` or `restrict`, so it can never widen what the capability allows.
 */

/** Narrows to the rows of one model whose `id` (or another key column) equals `id`; nothing else is reachable. */
export function narrowToRow<R, const Ops extends readonly DbOp[] = typeof DB_OPS>(
  cap: Capability<R>,
  target: { readonly model: string; readonly id: Scalar; readonly key?: string; readonly ops?: Ops; readonly fields?: readonly string[] },
): Capability<Meet<R, { readonly db: Ops[number] }>> {
  // Optional settings are read as own properties, so a polluted Object.prototype cannot pick the key column or ops.
  const opt = <K extends "key" | "ops" | "fields">(k: K): (typeof target)[K] | undefined => (Object.hasOwn(target, k) ? target[k] : undefined);
  const fields = opt("fields");
  return narrow(cap, {
    db: [
      {
        model: target.model,
        ops: opt("ops") ?? DB_OPS,
        ...defined({ fields }),
        scope: { [opt("key") ?? "id"]: target.id },
      },
    ],
  }) as Capability<Meet<R, { readonly db: Ops[number] }>>;
}

/** Narrows to calling one tool, keeping whatever resource domains the capability already carries for that tool to use. */
export function onlyTool<R>(cap: Capability<R>, tool: string): Capability<R> {
  const current = innermostGrant(cap);
  return narrow(cap, { ...domainsOf(current), tools: [tool] }) as Capability<R>;
}

/** Narrows to read-only access: file read and list, HTTP GET and HEAD, database reads, tools; no commands. */
export function readOnly<R>(
  cap: Capability<R>,
): Capability<Meet<R, { readonly fs: "read" | "list"; readonly http: "GET" | "HEAD"; readonly db: "read"; readonly tools: "call" }>> {
  const g = domainsOf(innermostGrant(cap));
  const keep = <T extends { readonly ops: readonly string[] }>(rules: readonly T[] | undefined, allowed: readonly string[]) =>
    (rules ?? []).flatMap((r) => {
      const ops = r.ops.filter((op) => allowed.includes(op));
      return ops.length === 0 ? [] : [{ ...r, ops }];
    });
  const httpRules = (g.http ?? []).flatMap((r) => {
    const methods = r.methods.filter((m) => m === "GET" || m === "HEAD");
    return methods.length === 0 ? [] : [{ ...r, methods }];
  });
  return narrow(cap, {
    ...defined({ tools: g.tools }),
    fs: keep(g.fs, ["read", "list"]),
    http: httpRules,
    db: keep(g.db, ["read"]),
  });
}

/** Restricts the capability to the next `seconds` seconds of its mint's clock (the articles' time-bounded escalation). */
export function forSeconds<R>(cap: Capability<R>, seconds: number): Capability<R> {
  if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidInput(`seconds must be a positive number, got ${String(seconds)}`);
  return restrict(cap, { expiresAt: Math.floor(clockTime(cap) + seconds * 1000) });
}

/** Restricts the capability to a single successful use. */
export function singleUse<R>(cap: Capability<R>): Capability<R> {
  return restrict(cap, { maxUses: 1 });
}

function domainsOf(g: Grant) {
  // Own properties only: a domain inherited from a polluted Object.prototype is not part of the grant.
  const own = <K extends keyof Grant>(k: K): Grant[K] | undefined => (Object.hasOwn(g, k) ? g[k] : undefined);
  const [tools, fs, http, db, exec] = [own("tools"), own("fs"), own("http"), own("db"), own("exec")];
  return {
    ...defined({ tools, fs, http, db, exec }),
  };
}
