/*
 * The explorer's API as the page reads it. The token lives in this module's
 * memory only: it is sent in the Authorization header, never put in a URL,
 * in storage or in the document.
 */
import type { AuditRecord } from "../../audit/index";
import type { RevocationTarget } from "../../token/index";
import type { ActivityChart, CapabilityDetail, DelegationTree, IntegrityView, RevocationView, SessionView, TimelinePage } from "../views";

export type { AuditRecord } from "../../audit/index";
export type { RevocationTarget } from "../../token/index";
export type { ActivityChart, CapabilityDetail, ChartDimension, ChartSeries, DelegationTree, IntegrityView as Integrity, RevocationView as RevocationResult, SessionView as Session, TreeNode } from "../views";

/** An answer other than 2xx: its status and the explorer's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let token: string | null = null;

export function setToken(value: string | null): void {
  token = value;
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return token === null ? extra : { ...extra, authorization: `Bearer ${token}` };
}

async function answer<T>(res: Response): Promise<T> {
  if (res.ok) return (await res.json()) as T;
  let message = `${String(res.status)} ${res.statusText}`;
  try {
    message = ((await res.json()) as { message?: string }).message ?? message;
  } catch {
    // The status line says enough.
  }
  throw new ApiError(res.status, message);
}

const base = new URL("api/", document.baseURI);

async function get<T>(route: string, params: Record<string, string | undefined> = {}): Promise<T> {
  const url = new URL(route, base);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") url.searchParams.set(k, v);
  return answer<T>(await fetch(url, { headers: headers(), cache: "no-store", credentials: "omit" }));
}

export const api = {
  session: () => get<SessionView>("session"),
  events: (filters: Record<string, string | undefined>) => get<TimelinePage>("events", filters),
  chart: (filters: Record<string, string | undefined>) => get<ActivityChart>("chart", filters),
  tree: (root: string, tenant?: string) => get<DelegationTree>("tree", { root, tenant }),
  capability: (id: string, tenant?: string) => get<CapabilityDetail>("capability", { id, tenant }),
  integrity: () => get<IntegrityView>("integrity"),
  revoke: async (target: RevocationTarget, reason: string): Promise<RevocationView> =>
    answer<RevocationView>(
      await fetch(new URL("revoke", base), { method: "POST", headers: headers({ "content-type": "application/json" }), body: JSON.stringify({ target, reason }), credentials: "omit" }),
    ),
};

/**
 * Live updates: reads the server-sent events of the stream (fetch, so the
 * token stays in a header) and hands each batch of events to `onEvents`
 * until `signal` aborts or the stream ends.
 */
export async function follow(filters: Record<string, string | undefined>, onEvents: (events: AuditRecord[]) => void, signal: AbortSignal): Promise<void> {
  const url = new URL("stream", base);
  for (const [k, v] of Object.entries(filters)) if (v !== undefined && v !== "") url.searchParams.set(k, v);
  const res = await fetch(url, { headers: headers(), signal, cache: "no-store", credentials: "omit" });
  if (!res.ok || res.body === null) throw new ApiError(res.status, "live updates were refused");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event === "events" && data !== undefined) onEvents((JSON.parse(data) as { events: AuditRecord[] }).events);
      if (event === "end") return;
    }
  }
}
