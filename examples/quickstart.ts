/**
 * The kernel in one page: mint a capability for a user, narrow it for a
 * sub-tool, watch a call outside the narrowed authority get denied, then
 * revoke a sub-agent's capability and watch its next call fail.
 *
 * Run it with `npm run example:kernel`.
 */
import { authorize, createMint, narrow, narrowToRow, requestTarget, revocable, type Capability, type Decision, type Request } from "agentcap";
import { examplePolicy } from "./policy.ts";

const rows: string[][] = [];

function attempt(who: string, cap: Capability, request: Request): Decision {
  const decision = authorize(cap, request);
  const what = `${request.action} ${requestTarget(request)}`;
  rows.push([who, what, decision.allowed ? "allowed" : `DENIED (${decision.code})`, decision.allowed ? "" : decision.reason]);
  return decision;
}

// 1. The application authenticates Alice and mints her root capability.
const mint = createMint({ issuer: "support-app", policy: examplePolicy });
const alice = mint.issue({ id: "alice", tenants: ["acme"], roles: ["agent"] }, { requestId: "req-1" });

attempt("alice (root)", alice, { action: "tool.call", tool: "lookup_customer", tenant: "acme" });
attempt("alice (root)", alice, { action: "db.read", model: "Customer", fields: ["name"], scope: { tenantId: "acme" }, tenant: "acme" });
attempt("alice (root)", alice, { action: "db.read", model: "Customer", fields: ["name"], scope: { tenantId: "globex" }, tenant: "globex" });

// 2. The lookup tool hands its sub-tool a capability for exactly one customer.
const oneCustomer = narrowToRow(alice, { model: "Customer", id: 7, ops: ["read"] });
attempt("sub-tool (customer 7)", oneCustomer, {
  action: "db.read",
  model: "Customer",
  fields: ["name"],
  scope: { tenantId: "acme", id: 7 },
  tenant: "acme",
});
attempt("sub-tool (customer 7)", oneCustomer, {
  action: "db.read",
  model: "Customer",
  fields: ["name"],
  scope: { tenantId: "acme", id: 8 },
  tenant: "acme",
});
attempt("sub-tool (customer 7)", oneCustomer, {
  action: "db.read",
  model: "Order",
  fields: ["total"],
  scope: { tenantId: "acme" },
  tenant: "acme",
});

// 3. A summarizer sub-agent gets a revocable, read-only slice of the knowledge base.
const summarizer = revocable(narrow(alice, { tenants: ["acme"], fs: [{ path: "/srv/kb/faq", ops: ["read"] }] }));
attempt("summarizer", summarizer.capability, { action: "fs.read", path: "/srv/kb/faq/returns.md", tenant: "acme" });
attempt("summarizer", summarizer.capability, { action: "fs.write", path: "/srv/kb/faq/returns.md", tenant: "acme" });
summarizer.revoke("task finished");
attempt("summarizer", summarizer.capability, { action: "fs.read", path: "/srv/kb/faq/returns.md", tenant: "acme" });

// 4. What was held, and where it came from.
const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
for (const row of rows) {
  console.log(`${row.slice(0, 3).map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ")}${row[3] ? `\n    ↳ ${row[3]}` : ""}`);
}
console.log(`\nroot capability ${alice.id} minted for ${alice.mint.principal} (request ${alice.mint.requestId}, issuer ${alice.mint.issuer})`);
console.log(`summarizer lineage: ${summarizer.capability.lineage.map((l) => l.id.slice(0, 8)).join(" → ")}`);
