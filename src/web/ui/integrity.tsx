import { useEffect, useState } from "preact/hooks";
import { api, ApiError, type Integrity as Report } from "./api";
import { visible } from "./text";

/** The log's integrity at a glance: whether it verifies against its signed checkpoints, the latest one, and intents without an outcome. */
export function Integrity() {
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () => {
    setError(null);
    api.integrity().then(setReport, (e: unknown) => { setError(e instanceof ApiError ? e.message : String(e)); });
  };
  useEffect(load, []);
  return (
    <section aria-labelledby="integrity-title">
      <h2 id="integrity-title" tabIndex={-1}>Integrity</h2>
      <button type="button" onClick={load}>Verify again</button>
      {error !== null && <p role="alert" class="error">{visible(error)}</p>}
      {report !== null && (
        <>
          <p class={`verdict ${report.ok ? "ok" : "bad"}`}>
            {report.ok ? "The log verifies" : "The log does not verify"}: {report.events} entries checked against {report.checkpoints.checked} signed checkpoint{report.checkpoints.checked === 1 ? "" : "s"}.
          </p>
          {report.pruned !== null && (
            <p class="pruned">
              Entries 1 to {report.pruned.upTo} were pruned by retention on {new Date(report.pruned.at).toISOString()} (those older than {new Date(report.pruned.before).toISOString()}){report.pruned.signed ? ", as a signed checkpoint records" : ", as the log records (not checked against the key)"}; the entries after them were verified from that record.
            </p>
          )}
          {report.problems.length > 0 && (
            <ul>
              {report.problems.map((p, i) => <li key={i}>{visible(p.kind)}: {visible(p.message)}</li>)}
            </ul>
          )}
          <h3>Latest signed checkpoint</h3>
          {report.latestCheckpoint === null ? <p>None yet.</p> : <pre>{visible(report.latestCheckpoint.note).replace(/\u240A/g, "\n")}</pre>}
          <h3>Intents without an outcome ({report.openIntentCount})</h3>
          <p>Each was recorded before acting; its outcome is not in the log: still in flight, or its process stopped between acting and recording how it ended.</p>
          <ul>
            {report.openIntents.map((o) => <li key={o.seq}>entry {o.seq}: event <code>{visible(o.id)}</code></li>)}
          </ul>
        </>
      )}
    </section>
  );
}
