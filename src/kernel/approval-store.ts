/**
 * Where approval requests are kept. The flow (approvals.ts) decides; a store
 * only holds entries and changes one when it still is the version the
 * changer read, so two processes (a gateway waiting on a call, an approver's
 * command line) can share one store without either losing the other's step.
 * The default store lives in the process; the SQLite and Postgres stores of
 * agentcap/token survive it and are shared by every process that opens them.
 */
import type { ApprovalView } from "./approvals.js";
import type { AuditSubject } from "./audit-sink.js";
import type { Denied } from "./decision.js";
import { InvalidInput } from "./errors.js";
import { deepFreeze } from "./plain-data.js";

/** One request as a store holds it. */
export interface ApprovalEntry {
  readonly view: ApprovalView;
  /** The caller as audit events name it, so any process can record the request's later steps in its lineage. */
  readonly subject: AuditSubject;
  /** The decision that asked for approval, recorded with each step. */
  readonly proposal: Denied;
  /** Bumped by every change. */
  readonly version: number;
}

/** A store of approval requests, shared by every flow that opens it. */
export interface ApprovalStore {
  /** Adds a new request at version 1; rejects if its id is taken. */
  insert(entry: Omit<ApprovalEntry, "version">): Promise<void>;
  /** The request with this id, or null. */
  get(id: string): Promise<ApprovalEntry | null>;
  /** Requests newest first: pending ones only unless `all`, at most `limit`. */
  list(options: { readonly all: boolean; readonly limit: number }): Promise<readonly ApprovalEntry[]>;
  /** Replaces the request's view when its version is still `version` (then bumped); false when another change came first. */
  update(id: string, version: number, view: ApprovalView): Promise<boolean>;
  close(): Promise<void>;
}

/** Settled requests an in-process store keeps, so it cannot grow without end. */
const MAX_REMEMBERED = 1000;

/** True for an object with the methods of an ApprovalStore. */
export function isApprovalStore(value: unknown): value is ApprovalStore {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return ["insert", "get", "list", "update", "close"].every((m) => typeof v[m] === "function");
}

/** An approval store held in this process: what one process's flow sees, gone when it exits. */
export function memoryApprovalStore(): ApprovalStore {
  const entries = new Map<string, ApprovalEntry>();
  const forgetSettled = () => {
    for (const [key, old] of entries) {
      if (entries.size <= MAX_REMEMBERED) return;
      if (old.view.status !== "pending") entries.delete(key);
    }
  };
  return Object.freeze({
    insert: (entry: Omit<ApprovalEntry, "version">) => {
      if (entries.has(entry.view.id)) return Promise.reject(new InvalidInput(`approval request ${entry.view.id} already exists`));
      entries.set(entry.view.id, deepFreeze({ ...entry, version: 1 }));
      forgetSettled();
      return Promise.resolve();
    },
    get: (id: string) => Promise.resolve(entries.get(id) ?? null),
    list: ({ all, limit }: { readonly all: boolean; readonly limit: number }) =>
      Promise.resolve(
        [...entries.values()]
          .filter((e) => all || e.view.status === "pending")
          .sort((a, b) => b.view.createdAt - a.view.createdAt)
          .slice(0, limit),
      ),
    update: (id: string, version: number, view: ApprovalView) => {
      const old = entries.get(id);
      if (old?.version !== version) return Promise.resolve(false);
      entries.set(id, deepFreeze({ ...old, view, version: version + 1 }));
      return Promise.resolve(true);
    },
    close: () => Promise.resolve(),
  });
}
