import { useEffect, useState } from "preact/hooks";
import { api, ApiError, type CapabilityDetail } from "./api";
import { visible, when } from "./text";

/** One capability: its lineage from the root, its root's mint record, its status and latest calls. */
export function Capability(props: { id: string; tenant: string | undefined; openTree: (root: string) => void }) {
  const [detail, setDetail] = useState<CapabilityDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (props.id === "") return;
    api.capability(props.id, props.tenant).then(
      (d) => { setDetail(d); setError(null); },
      (e: unknown) => { setDetail(null); setError(e instanceof ApiError ? e.message : String(e)); },
    );
  }, [props.id, props.tenant]);
  return (
    <section aria-labelledby="cap-title">
      <h2 id="cap-title" tabIndex={-1}>Capability {visible(props.id)}</h2>
      {error !== null && <p role="alert" class="error">{visible(error)}</p>}
      {detail !== null && (
        <>
          <p>
            Status: <span class={`badge ${detail.status}`}>{detail.status}</span> {detail.statusReason !== null && visible(detail.statusReason)}{" "}
            <button type="button" onClick={() => { props.openTree(detail.lineage[0]?.id ?? ""); }}>Open the tree of its root</button>
          </p>
          <h3>Mint record of its root</h3>
          <dl class="record">
            <dt>Principal</dt><dd>{visible(detail.mint.principal)}</dd>
            <dt>Tenants</dt><dd>{visible(detail.mint.tenants.join(", ") || "none")}</dd>
            <dt>Roles</dt><dd>{visible(detail.mint.roles.join(", ") || "none")}</dd>
            <dt>Request</dt><dd>{visible(detail.mint.requestId)}</dd>
            <dt>Issued</dt><dd>{when(detail.mint.issuedAt)} by {visible(detail.mint.issuer)}</dd>
            <dt>Mint</dt><dd>{visible(detail.mint.mintId)}</dd>
          </dl>
          <h3>Lineage, root first</h3>
          <ol class="lineage">
            {detail.lineage.map((l) => (
              <li key={l.id}>
                <code>{visible(l.id)}</code> {visible(l.summary)}
                {Object.keys(l.labels).length > 0 && <span class="label"> labels {visible(JSON.stringify(l.labels))}</span>}
              </li>
            ))}
          </ol>
          <h3>Latest calls made with it</h3>
          <ul class="calls-list">
            {detail.recent.map((c) => (
              <li key={c.seq} class={c.allowed ? "" : "denied"}>
                {when(c.at)} {visible(c.action)} {visible(c.target)} <span class={`badge ${c.allowed ? "allowed" : "denied"}`}>{c.allowed ? "Allowed" : "Denied"}</span>
                {c.reason !== null && <span class="why"> {visible(c.reason)}</span>}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
