/**
 * A call over MCP that waits for human approval. When the client supports
 * elicitation, its user is told what the call waits for (the request's id,
 * its approvers, until when) and asked whether to keep waiting: declining
 * cancels the request and fails the call; otherwise the call's answer comes
 * once it is approved and has run. A client without elicitation gets, after
 * the configured hold, a result saying the call is pending and what to do:
 * the call stays suspended in the gateway (it runs once approved), and the
 * same tool called again with the same arguments in the session returns its
 * outcome, or says it is still pending. Other arguments are another call,
 * with an approval of its own.
 */
import { ApprovalRefused, type ApprovalView } from "../kernel/index.js";
import { argumentsHash } from "../kernel/internal.js";
import type { CallOptions } from "../tools/index.js";
import type { CallToolResult, McpServer } from "./sdk.js";

/** Calls of one session that may wait for approval. */
export interface ApprovalWaiter {
  /** Runs the call through `run`, which passes the options on to the dispatcher. */
  call(name: string, args: Record<string, unknown>, run: (options: CallOptions) => Promise<CallToolResult>): Promise<CallToolResult>;
  /** Cancels every call of the session still waiting (the session ended). */
  close(): void;
}

interface Held {
  readonly result: Promise<CallToolResult>;
  readonly view: ApprovalView;
  readonly abort: AbortController;
  settled: CallToolResult | null;
}

/** What the model reads while the call waits: that nothing has run, who must approve, until when, and how to get the outcome. */
function pendingResult(view: ApprovalView): CallToolResult {
  const who = view.requirements.map((r) => `${r.quorum} of ${r.approvers.join(", ")}`).join(", and ");
  const text =
    `ERR_APPROVAL_PENDING: ${view.tool ?? "this call"} waits for human approval (request ${view.id}) by ${who}, until ${new Date(view.expiresAt).toISOString()}. ` +
    "Nothing has run yet. Tell the user it awaits approval; once approved it runs, and calling the same tool again with exactly the same arguments returns its result. " +
    "Other arguments would need an approval of their own.";
  return { isError: true, content: [{ type: "text", text }] };
}

function elicitationMessage(view: ApprovalView): string {
  const who = view.requirements.map((r) => `${r.quorum} of ${r.approvers.join(", ")}`).join(", and ");
  return `The call of ${view.tool ?? view.request.action} (arguments hash ${view.argsHash ?? "none"}) needs approval by ${who} before it runs; request ${view.id} waits until ${new Date(view.expiresAt).toISOString()}. Keep waiting for the approvers?`;
}

/** The approval handling of one session's server; `holdSeconds` is how long a call waits before a client without elicitation is told it is pending. */
export function approvalWaiter(server: McpServer["server"], holdSeconds: number): ApprovalWaiter {
  const held = new Map<string, Held>();
  const holdMs = holdSeconds * 1000;

  const answer = async (key: string, entry: Held): Promise<CallToolResult> => {
    if (entry.settled === null && holdMs > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([entry.result, new Promise((r) => (timer = setTimeout(r, holdMs)))]);
      clearTimeout(timer);
    }
    if (entry.settled === null) return pendingResult(entry.view);
    held.delete(key);
    return entry.settled;
  };

  return {
    call: async (name, args, run) => {
      const key = `${name}\n${argumentsHash(args)}`;
      const earlier = held.get(key);
      if (earlier !== undefined) return answer(key, earlier);
      const abort = new AbortController();
      let announce: (view: ApprovalView) => void = () => undefined;
      const pending = new Promise<ApprovalView>((resolve) => {
        announce = resolve;
      });
      const result = run({ approval: { signal: abort.signal, onPending: (view) => { announce(view); } } });
      const first = await Promise.race([result.then((done) => ({ done })), pending.then((view) => ({ view }))]);
      if ("done" in first) return first.done;
      const { view } = first;
      if (server.getClientCapabilities()?.elicitation !== undefined) {
        // The question is withdrawn once the call has its answer, whatever the user did.
        const asked = new AbortController();
        void result.finally(() => {
          asked.abort();
        });
        void server
          .elicitInput(
            { mode: "form", message: elicitationMessage(view), requestedSchema: { type: "object", properties: { keepWaiting: { type: "boolean", title: "Keep waiting", default: true } } } },
            { signal: asked.signal },
          )
          .then((reply) => {
            if (reply.action !== "accept" || reply.content?.keepWaiting === false) {
              abort.abort(new ApprovalRefused(`the user chose not to wait for approval ${view.id}; the call did not run`, "denied"));
            }
          })
          // The call goes on waiting if the question could not be asked or was overtaken by the answer.
          .catch(() => undefined);
        return result;
      }
      const entry: Held = { result, view, abort, settled: null };
      void result.then((r) => {
        entry.settled = r;
      });
      held.set(key, entry);
      return answer(key, entry);
    },
    close: () => {
      for (const entry of held.values()) entry.abort.abort(new ApprovalRefused("the session ended while its call waited for approval", "denied"));
      held.clear();
    },
  };
}
