import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, setToken, type Session } from "./api";
import { Capability } from "./capability";
import { Integrity } from "./integrity";
import { visible } from "./text";
import { Timeline } from "./timeline";
import { Tree } from "./tree";
import "./style.css";

type View = "timeline" | "tree" | "capability" | "integrity";

function SignIn(props: { onSession: (s: Session) => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setToken(value.trim());
    try {
      props.onSession(await api.session());
    } catch (err) {
      setToken(null);
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  return (
    <main class="signin">
      <h1>agentcap audit explorer</h1>
      <form onSubmit={(e) => void submit(e)}>
        <label>
          Token with an audit read grant
          <input type="password" name="token" autoComplete="off" value={value} onInput={(e) => { setValue(e.currentTarget.value); }} autoFocus />
        </label>
        <p class="hint">The token stays in this page's memory and goes only in the Authorization header; reloading the page forgets it.</p>
        {error !== null && <p role="alert" class="error">{visible(error)}</p>}
        <button type="submit">Open</button>
      </form>
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [view, setView] = useState<View>("timeline");
  const [root, setRoot] = useState("");
  const [capability, setCapability] = useState("");
  const [tenant, setTenant] = useState<string | undefined>(undefined);

  useEffect(() => {
    // Each view's heading takes the focus, so keyboard and screen reader users land on what opened.
    document.querySelector<HTMLElement>("main h2")?.focus();
  }, [view, root, capability]);

  if (session === null) {
    return (
      <SignIn
        onSession={(s) => {
          setSession(s);
          setTenant(s.scope.all ? undefined : s.scope.tenants[0]);
        }}
      />
    );
  }
  const openTree = (id: string) => { setRoot(id); setView("tree"); };
  const openCapability = (id: string) => { setCapability(id); setView("capability"); };
  const tab = (name: View, label: string) => (
    <li>
      <button type="button" aria-current={view === name ? "page" : undefined} onClick={() => { setView(name); }}>{label}</button>
    </li>
  );
  return (
    <>
      <header>
        <h1>agentcap audit explorer</h1>
        <p>
          Reading as <strong>{visible(session.principal)}</strong>,{" "}
          {session.scope.all ? "every tenant" : (
            <label>
              tenant{" "}
              <select value={tenant} onChange={(e) => { setTenant(e.currentTarget.value); }}>
                {session.scope.tenants.map((t) => <option key={t} value={t}>{visible(t)}</option>)}
              </select>
            </label>
          )}
          .{" "}
          <button type="button" onClick={() => { setToken(null); setSession(null); }}>Sign out</button>
        </p>
        <nav aria-label="Views">
          <ul>
            {tab("timeline", "Timeline")}
            {tab("tree", "Delegation tree")}
            {tab("capability", "Capability")}
            {session.scope.all && tab("integrity", "Integrity")}
          </ul>
        </nav>
      </header>
      <main>
        {view === "timeline" && <Timeline tenant={tenant} openTree={openTree} openCapability={openCapability} />}
        {view === "tree" && <Tree root={root} tenant={tenant} canRevoke={session.canRevoke} openCapability={openCapability} setRoot={setRoot} />}
        {view === "capability" && <Capability id={capability} tenant={tenant} openTree={openTree} />}
        {view === "integrity" && <Integrity />}
      </main>
    </>
  );
}

render(<App />, document.getElementById("app") as HTMLElement);
