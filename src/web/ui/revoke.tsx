import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, type RevocationResult, type RevocationTarget } from "./api";
import { visible } from "./text";

/** What the page offers to revoke: a capability and its subtree, a session, or a principal. */
export interface RevokeChoice {
  readonly label: string;
  readonly target: RevocationTarget;
}

/** Asks for confirmation (and a reason) in a modal dialog, then revokes and says what it reached. */
export function RevokeDialog(props: { choice: RevokeChoice; onClose: (result: RevocationResult | null) => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  const confirm = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const result = await api.revoke(props.choice.target, reason.trim() === "" ? "revoked from the audit explorer" : reason.trim());
      dialog.current?.close();
      props.onClose(result);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
      setBusy(false);
    }
  };
  return (
    <dialog ref={dialog} aria-labelledby="revoke-title" onCancel={() => { props.onClose(null); }}>
      <form onSubmit={(e) => void confirm(e)}>
        <h2 id="revoke-title">Revoke {visible(props.choice.label)}?</h2>
        <p>Everything derived from it stops at its next check, in every process sharing the token store. This cannot be undone.</p>
        <label>
          Reason
          <input type="text" value={reason} maxLength={1000} onInput={(e) => { setReason(e.currentTarget.value); }} autoFocus />
        </label>
        {error !== null && <p role="alert" class="error">{visible(error)}</p>}
        <div class="actions">
          <button type="button" onClick={() => { dialog.current?.close(); props.onClose(null); }}>Cancel</button>
          <button type="submit" class="danger" disabled={busy}>Revoke</button>
        </div>
      </form>
    </dialog>
  );
}

/** What a revocation reached, as a status message. */
export function RevokedNotice(props: { result: RevocationResult }) {
  const r = props.result.reached;
  return (
    <p role="status" class="notice">
      Revoked {props.result.kind} {visible(props.result.id)} ({visible(props.result.reason)}): reached {r.capabilities} capabilit{r.capabilities === 1 ? "y" : "ies"}, {r.tokens} token{r.tokens === 1 ? "" : "s"} and {r.sessions} session{r.sessions === 1 ? "" : "s"} in the serving process; every other process sharing the store refuses it too.
    </p>
  );
}
