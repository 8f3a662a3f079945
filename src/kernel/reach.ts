import type { AuditOp, DbOp, FsOp, HttpMethod } from "./grant.js";

/**
 * The type-level reach of a capability: for each domain, the operations it
 * may allow. Only a compile-time aid; the runtime check is what decides.
 */
export interface Reach {
  readonly fs?: FsOp;
  readonly http?: HttpMethod;
  readonly db?: DbOp;
  readonly exec?: "run";
  readonly tools?: "call";
  readonly revoke?: "record";
  readonly audit?: AuditOp;
}

/** Every operation of every domain: the reach of a capability whose grant is only known at run time. */
export interface FullReach {
  readonly fs: FsOp;
  readonly http: HttpMethod;
  readonly db: DbOp;
  readonly exec: "run";
  readonly tools: "call";
  readonly revoke: "record";
  readonly audit: AuditOp;
}

type Domain = keyof FullReach;

type Ops<R, K extends Domain> = K extends keyof R ? Exclude<R[K], undefined> : never;

/** A reach as one union of `domain:op` strings, e.g. `"fs:read" | "http:GET"`. */
export type ReachOps<R> = { [K in keyof R & Domain]-?: `${K}:${Exclude<R[K], undefined> & string}` }[keyof R & Domain];

/**
 * Contravariant in the reach, so a capability reaching more operations is
 * assignable where fewer are required, and never the reverse.
 */
export type ReachVariance<R> = (op: ReachOps<R>) => void;

type OpsOfRules<L> = NonNullable<L> extends readonly (infer Rule)[]
  ? Rule extends { readonly ops: readonly (infer O)[] }
    ? O
    : Rule extends { readonly methods: readonly (infer M)[] }
      ? M
      : never
  : never;

type Present<L, Op> = NonNullable<L> extends readonly unknown[] ? Op : never;

/** The reach a grant's own domains allow. */
export type ReachOf<G> = {
  readonly fs: G extends { readonly fs?: infer L } ? OpsOfRules<L> : never;
  readonly http: G extends { readonly http?: infer L } ? OpsOfRules<L> : never;
  readonly db: G extends { readonly db?: infer L } ? OpsOfRules<L> : never;
  readonly exec: G extends { readonly exec?: infer L } ? Present<L, "run"> : never;
  readonly tools: G extends { readonly tools?: infer L } ? Present<L, "call"> : never;
  readonly revoke: G extends { readonly revoke?: infer L } ? Present<L, "record"> : never;
  readonly audit: G extends { readonly audit?: infer L } ? (NonNullable<L> extends readonly (infer O)[] ? O : never) : never;
};

/** The reach two links allow together: per domain, the operations both allow. */
export type Meet<A, B> = { readonly [K in Domain]: Ops<A, K> & Ops<B, K> };

/**
 * The reach that requests of type `Q` need: per domain, the operations they
 * name. A tool whose `needs` returns literal requests gets a handler
 * capability typed to exactly these; the wide `Request` type gives every operation.
 */
export type ReachOfRequests<Q> = {
  readonly fs: Q extends { readonly action: `fs.${infer Op}` } ? Op & FsOp : never;
  readonly http: Q extends { readonly action: "http.request"; readonly method: infer M } ? M & HttpMethod : never;
  readonly db: Q extends { readonly action: `db.${infer Op}` } ? Op & DbOp : never;
  readonly exec: Q extends { readonly action: "exec" } ? "run" : never;
  readonly tools: Q extends { readonly action: "tool.call" } ? "call" : never;
  readonly revoke: Q extends { readonly action: "revoke" } ? "record" : never;
  readonly audit: Q extends { readonly action: `audit.${infer Op}` } ? Op & AuditOp : never;
};
