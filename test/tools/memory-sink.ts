import type { AuditCompletion, AuditEvent, AuditIntent, AuditSink } from "../../src/kernel/audit-sink.ts";

/**
 * An in-memory AuditSink for tests: keeps every event, and can be told to
 * fail. An intent is kept in `intents` and, once completed, becomes a whole
 * event in `events` (the completion's denial, if any, as its request and
 * decision), so `events` reads like one event per invocation.
 */
export interface MemorySink extends AuditSink {
  readonly events: AuditEvent[];
  /** Every intent recorded, in order, completed or not. */
  readonly intents: AuditIntent[];
  /** Intents not completed (yet). */
  pending(): AuditIntent[];
  /** Tool events only (resources may share the sink). */
  toolEvents(): AuditEvent[];
  /** From now on, every write rejects with this error (null to heal); `only` limits it to one of the three methods. */
  failWith(error: Error | null, only?: "intend" | "complete" | "write"): void;
}

export function memorySink(): MemorySink {
  const events: AuditEvent[] = [];
  const intents: AuditIntent[] = [];
  const open = new Map<string, AuditIntent>();
  let failure: { error: Error; only: string | undefined } | null = null;
  const fail = async (method: string) => {
    await Promise.resolve();
    if (failure !== null && (failure.only === undefined || failure.only === method)) throw failure.error;
  };
  return {
    events,
    intents,
    pending: () => [...open.values()],
    toolEvents: () => events.filter((e) => e.kind === "tool"),
    failWith: (error, only) => {
      failure = error === null ? null : { error, only };
    },
    intend: async (intent: AuditIntent) => {
      await fail("intend");
      intents.push(intent);
      open.set(intent.id, intent);
    },
    complete: async (c: AuditCompletion) => {
      await fail("complete");
      const intent = open.get(c.id);
      if (intent === undefined) throw new Error(`no open intent ${c.id}`);
      open.delete(c.id);
      events.push({ ...intent, ...(c.denial ?? {}), durationMs: c.durationMs, outcome: c.outcome });
    },
    write: async (event: AuditEvent) => {
      await fail("write");
      events.push(event);
    },
  };
}
