import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, ApiError, type DelegationTree, type RevocationResult, type TreeNode } from "./api";
import { RevokeDialog, RevokedNotice, type RevokeChoice } from "./revoke";
import { short, visible, when } from "./text";

/** Children shown at once under one node; more are a click away, so a tree of thousands stays quick. */
const SHOWN = 100;

function Node(props: { node: TreeNode; children: ReadonlyMap<string, TreeNode[]>; canRevoke: boolean; revoke: (c: RevokeChoice) => void; openCapability: (id: string) => void }) {
  const { node } = props;
  const kids = props.children.get(node.id) ?? [];
  const [open, setOpen] = useState(node.depth < 2);
  const [shown, setShown] = useState(SHOWN);
  const session = node.labels.session;
  return (
    <li role="treeitem" aria-expanded={kids.length === 0 ? undefined : open} aria-selected={false}>
      <div class={`node ${node.status}`}>
        {kids.length > 0 ? (
          <button type="button" class="toggle" aria-label={`${open ? "Collapse" : "Expand"} ${String(kids.length)} children of ${node.id}`} onClick={() => { setOpen(!open); }}>
            {open ? "▾" : "▸"}
          </button>
        ) : (
          <span class="toggle" aria-hidden="true">•</span>
        )}
        <button type="button" class="id" onClick={() => { props.openCapability(node.id); }} aria-label={`Details of capability ${node.id}`}>{short(node.id)}</button>
        <span class={`badge ${node.status}`}>{node.status}</span>
        <span class="summary">{visible(node.summary)}</span>
        <span class="calls">
          {node.calls.allowed} allowed, <span class={node.calls.denied > 0 ? "denied-count" : ""}>{node.calls.denied} denied</span>
        </span>
        {session !== undefined && <span class="label">session {visible(short(session))}</span>}
        {props.canRevoke && node.status === "live" && (
          <span class="revoke">
            <button type="button" class="danger" onClick={() => { props.revoke({ label: `capability ${node.id} and everything derived from it`, target: { capabilityId: node.id } }); }}>Revoke</button>
            {session !== undefined && (
              <button type="button" class="danger" onClick={() => { props.revoke({ label: `session ${session}`, target: { session } }); }}>Revoke session</button>
            )}
          </span>
        )}
      </div>
      {node.statusReason !== null && <p class="reason">{visible(node.statusReason)}</p>}
      {node.recent.length > 0 && open && (
        <ul class="calls-list">
          {node.recent.map((c) => (
            <li key={c.seq} class={c.allowed ? "" : "denied"}>
              {when(c.at)} {visible(c.action)} {visible(c.target)}{" "}
              <span class={`badge ${c.allowed ? "allowed" : "denied"}`}>{c.allowed ? "Allowed" : "Denied"}</span>
              {c.reason !== null && <span class="why"> {visible(c.reason)}</span>}
            </li>
          ))}
        </ul>
      )}
      {open && kids.length > 0 && (
        <ul role="group">
          {kids.slice(0, shown).map((k) => <Node key={k.id} {...props} node={k} />)}
          {kids.length > shown && (
            <li>
              <button type="button" onClick={() => { setShown(shown + SHOWN); }}>Show {Math.min(SHOWN, kids.length - shown)} more of {kids.length - shown}</button>
            </li>
          )}
        </ul>
      )}
    </li>
  );
}

/** The delegation tree of one root: each capability's grant, status and calls; revocation with confirmation. */
export function Tree(props: { root: string; tenant: string | undefined; canRevoke: boolean; openCapability: (id: string) => void; setRoot: (id: string) => void }) {
  const [tree, setTree] = useState<DelegationTree | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [choice, setChoice] = useState<RevokeChoice | null>(null);
  const [result, setResult] = useState<RevocationResult | null>(null);
  const [draft, setDraft] = useState(props.root);
  /** The root the field was last set to from outside; what the user types since is theirs until another root is opened. */
  const shown = useRef(props.root);
  const load = async () => {
    if (props.root === "") return;
    try {
      setError(null);
      setTree(await api.tree(props.root, props.tenant));
    } catch (e) {
      setTree(null);
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };
  useEffect(() => {
    // Not on the first render: the field starts as the root, and an effect that runs late (a busy machine) would wipe what was typed meanwhile.
    if (shown.current !== props.root) {
      shown.current = props.root;
      setDraft(props.root);
    }
    void load();
  }, [props.root, props.tenant]);
  const children = useMemo(() => {
    const m = new Map<string, TreeNode[]>();
    for (const n of tree?.nodes ?? []) if (n.parent !== null) m.set(n.parent, [...(m.get(n.parent) ?? []), n]);
    return m;
  }, [tree]);
  const root = tree?.nodes[0];
  return (
    <section aria-labelledby="tree-title">
      <h2 id="tree-title" tabIndex={-1}>Delegation tree</h2>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); props.setRoot(draft.trim()); }}>
        <label>
          Root capability
          <input type="text" name="root" value={draft} onInput={(e) => { setDraft(e.currentTarget.value); }} />
        </label>
        <div class="actions"><button type="submit">Open tree</button></div>
      </form>
      {error !== null && <p role="alert" class="error">{visible(error)}</p>}
      {result !== null && <RevokedNotice result={result} />}
      {tree !== null && root !== undefined && (
        <>
          <p>
            Minted for <strong>{visible(tree.mint.principal)}</strong> (request {visible(tree.mint.requestId)}, {when(tree.mint.issuedAt)}, by {visible(tree.mint.issuer)}); {tree.nodes.length} capabilities, {tree.events} events
            {tree.truncated ? " (the first events only)" : ""}.
            {props.canRevoke && (
              <>
                {" "}
                <button type="button" class="danger" onClick={() => { setChoice({ label: `principal ${tree.mint.principal}`, target: { principal: tree.mint.principal } }); }}>
                  Revoke principal {visible(tree.mint.principal)}
                </button>
              </>
            )}
          </p>
          <ul role="tree" aria-label={`Capabilities under ${tree.root}`} class="tree">
            <Node node={root} children={children} canRevoke={props.canRevoke} revoke={setChoice} openCapability={props.openCapability} />
          </ul>
        </>
      )}
      {choice !== null && (
        <RevokeDialog
          choice={choice}
          onClose={(r) => {
            setChoice(null);
            if (r !== null) {
              setResult(r);
              void load();
            }
          }}
        />
      )}
    </section>
  );
}
