import { z } from "zod";
import type { AuditSink, Capability } from "../src/index.ts";
import type { ToolContext } from "../src/tools/index.ts";
import { kernel, toolsEntry } from "./built.ts";
import { cpuInTurns, measureAsync, report, reportCpuTurns, reportTarget } from "./harness.ts";

const ITER = 5_000;
const { assertAuthorized, createMint } = kernel;
const { createDispatcher, defineTool, subToolNeeds } = toolsEntry;

/** A handler that does what a resource does for one read: authorize it on the capability it was given. */
function readHandler(input: { path: string }, cap: Capability): { path: string } {
  assertAuthorized(cap, { action: "fs.read", path: input.path });
  return { path: input.path };
}

/**
 * The dispatcher's cost per call (validate, check tool.call and the needs,
 * narrow to the needs, charge, run behind a revocable forwarder, audit)
 * against calling the same handler directly with the caller's capability,
 * in one run. The audit sink discards, so this is the dispatcher alone.
 */
export async function runToolsBench(): Promise<void> {
  const mint = createMint({ issuer: "bench", policy: () => ({ tools: ["read", "noop", "parent"], fs: [{ path: "/srv/data", ops: ["read"] }] }) });
  const cap = mint.issue({ id: "bench-user" });
  const input = z.object({ path: z.string() });
  const read = defineTool({ name: "read", description: "Read.", input, needs: ({ path }) => [{ action: "fs.read", path }] }, readHandler);
  const noop = defineTool({ name: "noop", description: "Nothing.", input: z.object({}), needs: () => [] }, () => null);
  const parent = defineTool(
    { name: "parent", description: "Calls read.", input, needs: (i, ctx) => subToolNeeds(read, i, ctx) },
    (i, c, ctx: ToolContext) => ctx.call(read, i, c),
  );
  const discard: AuditSink = { intend: () => undefined, complete: () => undefined, write: () => undefined };
  const dispatcher = createDispatcher({ tools: [read, noop, parent], audit: discard });
  const args = { path: "/srv/data/report.csv" };

  const baseline = await measureAsync("handler called directly (baseline)", () => Promise.resolve(readHandler(args, cap)), ITER * 10);
  const rows = [
    await measureAsync("dispatcher.call, tool with no needs", () => dispatcher.call(noop, {}, cap), ITER),
    await measureAsync("dispatcher.call, tool with one fs.read need", () => dispatcher.call(read, args, cap), ITER),
    await measureAsync("dispatcher.call, parent calling a sub-tool", () => dispatcher.call(parent, args, cap), ITER),
    await measureAsync("dispatcher.call denied (need outside the grant)", () => dispatcher.call(read, { path: "/etc/passwd" }, cap).catch(() => undefined), ITER),
    await measureAsync("dispatcher.catalog (3 tools)", () => Promise.resolve(dispatcher.catalog(cap)), ITER),
  ];
  report("tools: dispatcher overhead per call", baseline, rows);
  // The same calls in CPU time, taking turns in batches; the handler called directly is not awaited, as it returns no promise.
  const cpu = await cpuInTurns(
    [
      ["handler called directly (baseline)", () => readHandler(args, cap)],
      ["dispatcher.call, tool with no needs", () => dispatcher.call(noop, {}, cap)],
      ["dispatcher.call, tool with one fs.read need", () => dispatcher.call(read, args, cap)],
      ["dispatcher.call denied (need outside the grant)", () => dispatcher.call(read, { path: "/etc/passwd" }, cap).catch(() => undefined)],
    ],
    1_000,
  );
  reportCpuTurns("in CPU time, taking turns (median of 21 turns; ratio: median of each turn's ratio)", cpu);
  const [direct, bare, dispatched] = cpu;
  reportTarget("dispatcher overhead (one fs.read need, minus the handler called directly)", (dispatched?.nsPerOp ?? Number.NaN) - (direct?.nsPerOp ?? Number.NaN), 3_000);
  reportTarget("dispatcher overhead (no needs, a handler that does nothing)", bare?.nsPerOp ?? Number.NaN, 3_000);
}
