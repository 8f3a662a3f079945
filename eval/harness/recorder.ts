import { eventSink, type AuditEvent, type AuditSink } from "agentcap";

/*
 * The suite's audit sink: every resource and the dispatcher record into it,
 * and the runner reads one run's events at a time, to say which denial
 * stopped each attack.
 */

/** How a denial is reported: the error code, which link of the chain refused (root, session, task, tool call, sub-agent, escalation) and why. */
export interface DenialRecord {
  readonly tool: string | null;
  readonly code: string;
  readonly link: string;
  readonly rule: string;
  readonly because: string;
}

export interface Recorder {
  readonly sink: AuditSink;
  /** The run's events so far, and a fresh start for the next run. */
  take(): AuditEvent[];
}

export function createRecorder(): Recorder {
  let events: AuditEvent[] = [];
  return {
    sink: eventSink((e) => {
      events.push(e);
    }),
    take: () => {
      const out = events;
      events = [];
      return out;
    },
  };
}

/** The denials among `events`, each naming the kind of link that refused. */
export function denialsOf(events: readonly AuditEvent[]): DenialRecord[] {
  return events.flatMap((e) => {
    const d = e.decision;
    if (d.allowed) return [];
    return [{ tool: e.tool, code: d.code, link: linkKind(e, d.link), rule: d.rule, because: d.because }];
  });
}

/**
 * The part of the runtime a link comes from, read from the caretaker labels
 * at or after it: a narrowing is followed by the forwarder that names it.
 */
function linkKind(event: AuditEvent, link: number): string {
  if (link === 0) return "root (mint policy)";
  const lineage = event.subject.lineage;
  for (let i = link; i < lineage.length; i += 1) {
    const labels = lineage[i]?.labels ?? {};
    if (labels.tool !== undefined) return "tool call (its needs)";
    if (labels.agent !== undefined) return "sub-agent";
    if (labels.task === "escalation") return "escalation";
    if (labels.task !== undefined) return "task (Governor grant)";
    if (labels.session !== undefined) return "session";
  }
  return `link ${String(link)}`;
}
