/*
 * The explorer's API as the page reads it. The token lives in this module's
 * memory only: it is sent in the Authorization header, never put in a URL,
 * in storage or in the document.
 */

export interface Scope {
  readonly all: boolean;
  readonly tenants?: readonly string[];
}

export interface Session {
  readonly principal: string;
  readonly scope: Scope;
  readonly canRevoke: boolean;
}

export interface LinkSummary {
  readonly id: string;
  readonly hash: string;
  readonly grant: Record<string, unknown> | null;
  readonly conditions: Record<string, unknown>;
  readonly labels: Readonly<Record<string, string>>;
  readonly summary?: string;
}

export interface MintRecord {
  readonly principal: string;
  readonly tenants: readonly string[];
  readonly roles: readonly string[];
  readonly requestId: string;
  readonly issuedAt: number;
  readonly issuer: string;
  readonly mintId: string;
}

export interface LoggedEvent {
  readonly id: string;
  readonly at: number;
  readonly kind: string;
  readonly tool: string | null;
  readonly request: { readonly action: string; readonly [key: string]: unknown };
  readonly decision: { readonly allowed: true } | { readonly allowed: false; readonly code: string; readonly reason: string; readonly linkId: string };
  readonly subject: { readonly capabilityId: string; readonly lineage: readonly LinkSummary[]; readonly mint: MintRecord; readonly sessionId: string | null };
  readonly durationMs: number | null;
  readonly outcome: { readonly ok: true } | { readonly ok: false; readonly errorCode: string; readonly message: string } | null;
}

export interface AuditRecord {
  readonly seq: number;
  readonly event: LoggedEvent;
}

export type Status = "live" | "expired" | "revoked";

export interface CallSummary {
  readonly seq: number;
  readonly id: string;
  readonly at: number;
  readonly tool: string | null;
  readonly action: string;
  readonly target: string;
  readonly allowed: boolean;
  readonly reason: string | null;
  readonly open: boolean;
}

export interface TreeNode {
  readonly id: string;
  readonly parent: string | null;
  readonly depth: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly summary: string;
  readonly status: Status;
  readonly statusReason: string | null;
  readonly calls: { readonly allowed: number; readonly denied: number };
  readonly recent: readonly CallSummary[];
}

export interface DelegationTree {
  readonly root: string;
  readonly mint: MintRecord;
  readonly nodes: readonly TreeNode[];
  readonly events: number;
  readonly truncated: boolean;
}

export interface CapabilityDetail {
  readonly id: string;
  readonly lineage: readonly (LinkSummary & { readonly summary: string })[];
  readonly mint: MintRecord;
  readonly status: Status;
  readonly statusReason: string | null;
  readonly recent: readonly CallSummary[];
}

export interface Integrity {
  readonly ok: boolean;
  readonly events: number;
  readonly checkpoints: { readonly checked: number; readonly latest: number | null };
  readonly latestCheckpoint: { readonly size: number; readonly note: string } | null;
  readonly openIntents: readonly { readonly seq: number; readonly id: string }[];
  readonly openIntentCount: number;
  readonly problems: readonly { readonly kind: string; readonly message: string }[];
}

export interface RevocationResult {
  readonly kind: string;
  readonly id: string;
  readonly reason: string;
  readonly reached: { readonly capabilities: number; readonly tokens: number; readonly sessions: number };
}

export type RevocationTarget = { readonly capabilityId: string } | { readonly session: string } | { readonly principal: string };

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
  session: () => get<Session>("session"),
  events: (filters: Record<string, string | undefined>) => get<{ events: AuditRecord[]; next: number | null }>("events", filters),
  tree: (root: string, tenant?: string) => get<DelegationTree>("tree", { root, tenant }),
  capability: (id: string, tenant?: string) => get<CapabilityDetail>("capability", { id, tenant }),
  integrity: () => get<Integrity>("integrity"),
  revoke: async (target: RevocationTarget, reason: string): Promise<RevocationResult> =>
    answer<RevocationResult>(
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
