/**
 * A small, dependency-free timing harness: each case is timed in several
 * rounds after a warm-up, and the median round is reported, so a ratio
 * against a baseline measured in the same run stays meaningful on a busy
 * machine.
 */

export interface Measurement {
  readonly name: string;
  readonly nsPerOp: number;
}

const ROUNDS = 7;

/** Times `fn` over `iterations` calls per round; returns the median ns per call. */
export function measure(name: string, fn: () => unknown, iterations: number): Measurement {
  for (let i = 0; i < Math.min(iterations, 10_000); i++) fn();
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    rounds.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  rounds.sort((a, b) => a - b);
  return { name, nsPerOp: rounds[Math.floor(ROUNDS / 2)] ?? Number.NaN };
}

/** Times an async `fn`, awaiting each call in turn. */
export async function measureAsync(name: string, fn: () => Promise<unknown>, iterations: number): Promise<Measurement> {
  for (let i = 0; i < Math.min(iterations, 200); i++) await fn();
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) await fn();
    rounds.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  rounds.sort((a, b) => a - b);
  return { name, nsPerOp: rounds[Math.floor(ROUNDS / 2)] ?? Number.NaN };
}

/**
 * Measures every case `passes` times, taking turns, and keeps each case's
 * fastest median: a burst of load on a shared machine then slows one pass of
 * every case alike instead of skewing the ratio between them.
 */
export async function interleaved(cases: readonly (readonly [string, () => Promise<unknown>])[], iterations: number, passes = 3): Promise<Measurement[]> {
  const best = cases.map(([name]) => ({ name, nsPerOp: Number.POSITIVE_INFINITY }));
  for (let pass = 0; pass < passes; pass++) {
    for (const [i, [name, fn]] of cases.entries()) {
      const m = await measureAsync(name, fn, iterations);
      const b = best[i];
      if (b !== undefined && m.nsPerOp < b.nsPerOp) b.nsPerOp = m.nsPerOp;
    }
  }
  return best;
}

/**
 * Median CPU time (this process's user and system time) per call of `fn`,
 * awaited in turn. Unlike wall time, it does not count the time other
 * processes hold the CPU, so an absolute target can be checked on a busy
 * machine; work on the process's helper threads (the garbage collector's)
 * is counted.
 */
export async function cpuPerCall(fn: () => unknown, iterations: number): Promise<number> {
  for (let i = 0; i < Math.min(iterations, 2_000); i++) await fn();
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.cpuUsage();
    for (let i = 0; i < iterations; i++) await fn();
    const used = process.cpuUsage(start);
    rounds.push(((used.user + used.system) * 1000) / iterations);
  }
  rounds.sort((a, b) => a - b);
  return rounds[Math.floor(ROUNDS / 2)] ?? Number.NaN;
}

/** Prints one absolute target against CPU time measured by `cpuPerCall`. */
export function reportTarget(what: string, ns: number, targetNs: number): void {
  console.log(`  ${what}: ${formatNs(ns)} of CPU per call (target ≤ ${formatNs(targetNs)}: ${ns <= targetNs ? "met" : "missed"})`);
}

function formatNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${ns.toFixed(1)} ns`;
}

/** Prints a section: each row as time per op and as a ratio to the section's baseline. */
export function report(title: string, baseline: Measurement, rows: readonly Measurement[]): void {
  console.log(`\n${title}`);
  console.log(`  ${"case".padEnd(52)} ${"per op".padStart(12)} ${"× baseline".padStart(12)}`);
  for (const m of [baseline, ...rows]) {
    const ratio = m === baseline ? "1.00 (base)" : (m.nsPerOp / baseline.nsPerOp).toFixed(2);
    console.log(`  ${m.name.padEnd(52)} ${formatNs(m.nsPerOp).padStart(12)} ${ratio.padStart(12)}`);
  }
}

/** Bytes of heap retained per item created by `make`, measured with forced GCs around it. */
export function heapPerItem(make: (i: number) => unknown, count: number): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return Number.NaN;
  gc();
  const before = process.memoryUsage().heapUsed;
  const keep: unknown[] = new Array<unknown>(count);
  for (let i = 0; i < count; i++) keep[i] = make(i);
  gc();
  const after = process.memoryUsage().heapUsed;
  if (keep.length !== count) throw new Error("unreachable: keeps the items alive until measured");
  return (after - before) / count;
}
