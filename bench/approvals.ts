import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createApprovals, createMint, memoryApprovalStore, type ApprovalStore, type AuditSink } from "../src/index.ts";
import { openSqliteApprovalStore } from "../src/token/index.ts";

const ROUNDS = 100;

/** Milliseconds at the given quantile of sorted `xs`. */
const quantile = (xs: readonly number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? Number.NaN;

/**
 * Time from the approval that completes the quorum to the approved call
 * starting: an approver in the same process (the waiting call is told at
 * once), and one on another connection to a shared SQLite store, as the
 * command line is (the waiting call learns of it at its next look, every
 * `pollMs`). The approval's own steps (the store's change, the audit write)
 * are inside the time; the audit sink discards.
 */
export async function runApprovalsBench(): Promise<void> {
  const discard: AuditSink = { intend: () => undefined, complete: () => undefined, write: () => undefined };
  const mint = createMint({ issuer: "bench", policy: (p) => (p.id === "alice" ? { tools: ["pay"], approval: [{ tools: ["pay"], approvers: ["bob"] }] } : {}) });
  const alice = mint.issue({ id: "alice" });
  const bob = mint.issue({ id: "bob" });
  const dir = mkdtempSync(path.join(tmpdir(), "agentcap-bench-approvals-"));
  const file = path.join(dir, "tokens.db");
  const memory = memoryApprovalStore();
  const cases: [string, ApprovalStore, ApprovalStore, number][] = [
    ["same process, in-process store", memory, memory, 250],
    ["other connection, SQLite store, pollMs 250", openSqliteApprovalStore(file), openSqliteApprovalStore(file), 250],
    ["other connection, SQLite store, pollMs 20", openSqliteApprovalStore(file), openSqliteApprovalStore(file), 20],
  ];
  console.log("\napprovals: from the completing approval to the approved call starting");
  for (const [name, waiterStore, approverStore, pollMs] of cases) {
    const same = waiterStore === approverStore;
    const waiter = createApprovals({ audit: discard, store: waiterStore, pollMs });
    const approver = same ? waiter : createApprovals({ audit: discard, store: approverStore, pollMs });
    const times: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      let id = "";
      const started = new Promise<number>((resolve) => {
        void waiter.run(alice, { action: "tool.call", tool: "pay" }, { args: { i }, onPending: (v) => (id = v.id) }, () => {
          resolve(performance.now());
        });
      });
      while (id === "") await new Promise((r) => setImmediate(r));
      const approvedAt = performance.now();
      await approver.approve(id, bob);
      times.push((await started) - approvedAt);
    }
    times.sort((a, b) => a - b);
    console.log(`  ${name.padEnd(52)} median ${quantile(times, 0.5).toFixed(2)} ms, p95 ${quantile(times, 0.95).toFixed(2)} ms (${ROUNDS} approvals)`);
    await waiterStore.close();
    if (!same) await approverStore.close();
  }
  rmSync(dir, { recursive: true, force: true });
}
