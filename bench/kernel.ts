import type { Capability, Grant, Request } from "../src/index.ts";
import { kernel } from "./built.ts";
import { cpuInTurns, heapPerItem, measure, report, reportCpuTurns, reportTarget } from "./harness.ts";

const ITER = 200_000;
const { authorize, check, createManualClock, createMint, narrow, revocable, shadow } = kernel;

const grant: Grant = {
  tools: ["read_file", "search"],
  fs: [
    { path: "/srv/data", ops: ["read", "list"] },
    { path: "/srv/out", ops: ["write"] },
  ],
  http: [{ origin: "https://api.example.com", methods: ["GET"], pathPrefix: "/v1/" }],
  db: [{ model: "Customer", ops: ["read"], scope: { tenantId: 42 } }],
};

/** The same grant deep-frozen, as an application that hardens its grants passes it: read once, then known. */
const hardenedGrant: Grant = structuredClone(grant);
(function harden(value: unknown): void {
  if (typeof value !== "object" || value === null) return;
  for (const inner of Object.values(value)) harden(inner);
  Object.freeze(value);
})(hardenedGrant);

function chainOfDepth(root: Capability, depth: number): Capability {
  let cap = root;
  for (let i = 1; i < depth; i++) cap = i % 2 === 0 ? revocable(cap).capability : narrow(cap, grant);
  return cap;
}

/** Authorization against chains of depth 1, 4 and 16; narrowing; memory per capability. */
export async function runKernelBench(): Promise<void> {
  const mint = createMint({ issuer: "bench", clock: createManualClock(0), policy: () => grant });
  const root = mint.issue({ id: "bench-user" });
  const fsRead: Request = { action: "fs.read", path: "/srv/data/reports/q3.csv" };
  const toolCall: Request = { action: "tool.call", tool: "search" };

  const plain = (r: Request) => r.action === "fs.read";
  const baseline = measure("plain function call (baseline)", () => plain(fsRead), ITER * 10);

  const rows = [1, 4, 16].flatMap((depth) => {
    const cap = chainOfDepth(root, depth);
    return [
      measure(`check fs.read, depth ${depth}`, () => check(cap, fsRead), ITER),
      measure(`check tool.call, depth ${depth}`, () => check(cap, toolCall), ITER),
    ];
  });
  const depth4 = chainOfDepth(root, 4);
  rows.push(measure("authorize (charging) tool.call, depth 4", () => authorize(depth4, toolCall), ITER));
  // Depth 4 with the fourth link attached in shadow (a tighter grant that agrees, and one that would deny): the shadow decision's cost is the difference.
  const enforced3 = chainOfDepth(root, 3);
  const agreeing = shadow(enforced3, grant);
  const disagreeing = shadow(enforced3, { ...grant, fs: [{ path: "/srv/out", ops: ["write"] }] });
  rows.push(measure("check fs.read, depth 4, last link in shadow (agrees)", () => check(agreeing, fsRead), ITER));
  rows.push(measure("check fs.read, depth 4, last link in shadow (would deny)", () => check(disagreeing, fsRead), ITER));
  const windowed = narrow(chainOfDepth(root, 3), { ...grant, rates: [{ per: 60, calls: 1_000_000_000 }] });
  rows.push(measure("authorize tool.call, depth 4, a windowed rate in process", () => authorize(windowed, toolCall), ITER));
  rows.push(measure("narrow (append a link)", () => narrow(root, grant), ITER / 10));
  rows.push(measure("narrow with a hardened grant (read once)", () => narrow(root, hardenedGrant), ITER / 10));
  rows.push(measure("revocable (append a forwarder)", () => revocable(root), ITER / 10));
  report("kernel: authorization", baseline, rows);
  const cpu = await cpuInTurns(
    [
      ["narrow (append a link)", () => narrow(root, grant)],
      ["narrow with a hardened grant (read once)", () => narrow(root, hardenedGrant)],
      ["check fs.read, depth 4", () => check(depth4, fsRead)],
      ["check tool.call, depth 4", () => check(depth4, toolCall)],
    ],
    2_000,
  );
  reportCpuTurns("in CPU time, taking turns (median of 21 turns)", cpu, false);
  reportTarget("narrow", cpu[0]?.nsPerOp ?? Number.NaN, 3_000);
  reportTarget("narrow with a hardened grant", cpu[1]?.nsPerOp ?? Number.NaN, 3_000);

  const bytes = heapPerItem(() => narrow(root, grant), 20_000);
  console.log(
    Number.isNaN(bytes)
      ? "  memory per capability: run with --expose-gc to measure"
      : `  memory per narrowed capability: ${Math.round(bytes)} bytes`,
  );
}
