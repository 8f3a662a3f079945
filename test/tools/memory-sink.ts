import type { AuditEvent, AuditSink } from "../../src/kernel/audit-sink.ts";

/** An in-memory AuditSink for tests: keeps every event, and can be told to fail. */
export interface MemorySink extends AuditSink {
  readonly events: AuditEvent[];
  /** Tool events only (resources may share the sink). */
  toolEvents(): AuditEvent[];
  /** From now on, every write rejects with this error (null to heal). */
  failWith(error: Error | null): void;
}

export function memorySink(): MemorySink {
  const events: AuditEvent[] = [];
  let failure: Error | null = null;
  return {
    events,
    toolEvents: () => events.filter((e) => e.kind === "tool"),
    failWith: (error) => {
      failure = error;
    },
    write: async (event) => {
      await Promise.resolve();
      if (failure !== null) throw failure;
      events.push(event);
    },
  };
}
