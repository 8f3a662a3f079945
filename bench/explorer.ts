import type { AuditStore } from "../src/audit/store.ts";
import { createMint, type Capability } from "../src/index.ts";
import { createExplorer, listenExplorer } from "../src/web/index.ts";
import { measureAsync, report } from "./harness.ts";

/** What the explorer's requests over a large log are aimed at: a session of one principal, in the middle of the log. */
export interface ExplorerProbe {
  readonly root: Capability;
  readonly session: Capability;
  readonly principal: string;
  readonly tenant: string;
}

/**
 * Explorer API requests over HTTP on 127.0.0.1 against `store` (a large log):
 * timeline pages with the page's filters, and the delegation tree of one
 * session. Each is one whole request: bearer check, audit read decision,
 * query and JSON. The issue's target is under 100 ms per timeline request.
 */
export async function explorerRequests(store: AuditStore, probe: ExplorerProbe): Promise<void> {
  const reader = createMint({ issuer: "bench", policy: () => ({ audit: ["read"] }) }).issue({ id: "auditor" });
  const confined = createMint({ issuer: "bench", policy: () => ({ audit: ["read"], tenants: [probe.tenant] }) }).issue({ id: "tenant-auditor", tenants: [probe.tenant] });
  const explorer = createExplorer({ audit: store, authenticate: (token) => Promise.resolve(token === "confined" ? confined : reader), revocations: () => Promise.resolve([]) });
  const http = await listenExplorer(explorer, { host: "127.0.0.1", port: 0 });
  const origin = new URL(http.url).origin;
  try {
    const get = async (path: string, token = "reader") => {
      const res = await fetch(`${origin}/explore/api/${path}`, { headers: { authorization: `Bearer ${token}` } });
      if (!res.ok) throw new Error(`explorer ${path}: ${String(res.status)} ${await res.text()}`);
      return (await res.json()) as { events?: unknown[]; nodes?: unknown[]; series?: unknown[] };
    };
    const r = async (name: string, path: string, token?: string) => {
      const body = await get(path, token);
      const size = body.events?.length ?? body.nodes?.length ?? body.series?.length ?? 0;
      return measureAsync(`${name} (${String(size)})`, () => get(path, token), 10);
    };
    const baseline = await r("timeline, newest first, no filter (baseline)", "events?order=desc&limit=50");
    const rows = [
      await r("timeline, principal", `events?order=desc&limit=50&principal=${probe.principal}`),
      await r("timeline, denied only", "events?order=desc&limit=50&decision=denied"),
      await r("timeline, tool and action", "events?order=desc&limit=50&tool=search&action=fs.read"),
      await r("timeline, capability and below", `events?order=desc&limit=50&capability=${probe.session.id}`),
      await r("timeline, next page (after)", "events?order=desc&limit=50&after=500000"),
      await r("timeline, a reader confined to its tenant", "events?order=desc&limit=50", "confined"),
      await r("delegation tree of a session (nodes)", `tree?root=${probe.session.id}`),
      await r("chart by tool of one principal's events (series)", `chart?by=tool&principal=${probe.principal}`),
      await r("chart by principal, no filter: the whole log (series)", "chart?by=principal"),
    ];
    report("explorer: API requests over HTTP on the large log (target: a timeline request under 100 ms)", baseline, rows);
  } finally {
    await http.close();
  }
}
