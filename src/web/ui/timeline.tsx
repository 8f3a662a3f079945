import { useEffect, useState } from "preact/hooks";
import { api, ApiError, follow, type AuditRecord } from "./api";
import { ActivityCharts } from "./chart";
import { short, visible, when } from "./text";

const ACTIONS = ["", "tool.call", "fs.read", "fs.write", "fs.list", "fs.delete", "http.request", "db.read", "db.create", "db.update", "db.delete", "exec", "revoke", "audit.read"];
const FIELDS = [
  ["principal", "Principal"],
  ["requestId", "Root request"],
  ["capability", "Capability (and below)"],
  ["tool", "Tool"],
] as const;

type Filters = Record<string, string>;

/** A datetime-local value (the reader's local time) as an ISO time, or undefined. */
function iso(local: string | undefined): string | undefined {
  if (local === undefined || local === "") return undefined;
  const ms = Date.parse(local);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

/** What a request acts on, by the fields its kinds have (the server's requestTarget needs the kernel, which the page does not bundle). */
function target(r: AuditRecord): string {
  const q: Readonly<Record<string, unknown>> = Object.fromEntries(Object.entries(r.event.request));
  for (const key of ["tool", "path", "url", "model", "id"]) {
    const value = q[key];
    if (typeof value === "string") return value;
  }
  if (Array.isArray(q.argv)) return q.argv.map(String).join(" ");
  return "";
}

function outcome(r: AuditRecord): string {
  const d = r.event.decision;
  if (!d.allowed) return `denied: ${d.reason}`;
  const o = r.event.outcome;
  if (o === null) return "no outcome recorded";
  return o.ok ? "ok" : `failed: ${o.message}`;
}

/** The timeline: events matching the filters, newest first, a page at a time, with live updates. */
export function Timeline(props: { tenant: string | undefined; openTree: (root: string) => void; openCapability: (id: string) => void }) {
  const [draft, setDraft] = useState<Filters>({});
  const [filters, setFilters] = useState<Filters>({});
  const [events, setEvents] = useState<AuditRecord[]>([]);
  const [next, setNext] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);
  const query = (f: Filters) => ({ ...f, since: iso(f.since), until: iso(f.until), tenant: props.tenant });

  const load = async (f: Filters, after: number | null) => {
    try {
      setError(null);
      const page = await api.events({ ...query(f), order: "desc", limit: "50", after: after === null ? undefined : String(after) });
      setEvents((old) => (after === null ? [...page.events] : [...old, ...page.events]));
      setNext(page.next);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };

  useEffect(() => {
    void load(filters, null);
  }, [filters, props.tenant]);

  useEffect(() => {
    if (!live) return;
    const abort = new AbortController();
    // New events only: the time range of the filters does not apply to what has not happened yet.
    const after = events.reduce((m, r) => Math.max(m, r.seq), 0);
    follow({ ...query(filters), since: undefined, until: undefined, after: String(after) }, (fresh) => {
      setEvents((old) => {
        const bySeq = new Map(old.map((r) => [r.seq, r]));
        for (const r of fresh) bySeq.set(r.seq, r);
        return [...bySeq.values()].sort((a, b) => b.seq - a.seq);
      });
    }, abort.signal).catch((e: unknown) => {
      if (!abort.signal.aborted) setError(e instanceof Error ? e.message : String(e));
    });
    return () => { abort.abort(); };
  }, [live, filters, props.tenant]);

  const field = (name: string) => ({
    value: draft[name] ?? "",
    onInput: (e: Event) => { setDraft({ ...draft, [name]: (e.currentTarget as HTMLInputElement | HTMLSelectElement).value }); },
  });

  return (
    <section aria-labelledby="timeline-title">
      <h2 id="timeline-title" tabIndex={-1}>Timeline</h2>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); setFilters({ ...draft }); }}>
        {FIELDS.map(([name, label]) => (
          <label key={name}>
            {label}
            <input type="text" name={name} {...field(name)} />
          </label>
        ))}
        <label>
          Action
          <select name="action" {...field("action")}>
            {ACTIONS.map((a) => <option key={a} value={a}>{a === "" ? "any" : a}</option>)}
          </select>
        </label>
        <label>
          Decision
          <select name="decision" {...field("decision")}>
            <option value="">any</option>
            <option value="allowed">allowed</option>
            <option value="denied">denied</option>
          </select>
        </label>
        <label>
          Since
          <input type="datetime-local" name="since" {...field("since")} />
        </label>
        <label>
          Until
          <input type="datetime-local" name="until" {...field("until")} />
        </label>
        <div class="actions">
          <button type="submit">Filter</button>
          <button type="button" onClick={() => { setDraft({}); setFilters({}); }}>Clear</button>
          <label class="inline">
            <input type="checkbox" checked={live} onChange={(e) => { setLive(e.currentTarget.checked); }} /> Live updates
          </label>
        </div>
      </form>
      {error !== null && <p role="alert" class="error">{visible(error)}</p>}
      <ActivityCharts filters={query(filters)} />
      <p class="count" aria-live="polite">{events.length} event{events.length === 1 ? "" : "s"} shown</p>
      <table class="events">
        <thead>
          <tr>
            <th scope="col">Time (UTC)</th>
            <th scope="col">Principal</th>
            <th scope="col">Tool</th>
            <th scope="col">Action</th>
            <th scope="col">Target</th>
            <th scope="col">Decision</th>
            <th scope="col">Capability</th>
          </tr>
        </thead>
        <tbody>
          {events.map((r) => (
            <tr key={r.seq} class={r.event.decision.allowed ? "" : "denied"}>
              <td>{when(r.event.at)}</td>
              <td>{visible(r.event.subject.mint.principal)}</td>
              <td>{visible(r.event.tool ?? "")}</td>
              <td>{visible(r.event.request.action)}</td>
              <td class="target">{visible(target(r))}</td>
              <td>
                <span class={`badge ${r.event.decision.allowed ? "allowed" : "denied"}`}>{r.event.decision.allowed ? "Allowed" : "Denied"}</span>{" "}
                <span class="why">{visible(outcome(r))}</span>
              </td>
              <td class="links">
                <button type="button" onClick={() => { props.openCapability(r.event.subject.capabilityId); }} aria-label={`Details of capability ${r.event.subject.capabilityId}`}>
                  {short(r.event.subject.capabilityId)}
                </button>
                <button type="button" onClick={() => { props.openTree(r.event.subject.lineage[0]?.id ?? ""); }} aria-label={`Delegation tree of root ${r.event.subject.lineage[0]?.id ?? ""}`}>
                  Tree
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {next !== null && <button type="button" onClick={() => void load(filters, next)}>Load older events</button>}
    </section>
  );
}
