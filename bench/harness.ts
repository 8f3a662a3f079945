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

/** CPU time per call of each case measured in turns, and each case's ratio to the first. */
export interface CpuTurns {
  readonly name: string;
  /** Median over the turns of this case's CPU time per call. */
  readonly nsPerOp: number;
  /** Median over the turns of this case's CPU time divided by the first case's in the same turn. */
  readonly ratio: number;
}

/**
 * CPU time (this process's user and system time) per call of each case,
 * measured in turns: every turn runs a batch of each case in order, with
 * `process.cpuUsage` around each batch. A case returning a promise is awaited,
 * one that does not is not (an await would add its own cost to a case of
 * a microsecond). On a machine shared with other work, CPU time is not
 * inflated by the time other processes hold a core, and a slower stretch
 * (their caches, the frequency) falls on neighbouring batches of every case
 * alike, so each turn's ratio to the first case is taken and the median of
 * those ratios reported.
 */
export async function cpuInTurns(cases: readonly (readonly [string, () => unknown])[], batch: number, turns = 21): Promise<CpuTurns[]> {
  const run = async (fn: () => unknown, n: number) => {
    for (let i = 0; i < n; i++) {
      const r = fn();
      if (r instanceof Promise) await r;
    }
  };
  for (const [, fn] of cases) await run(fn, Math.min(batch * 2, 20_000));
  const perCall = cases.map(() => [] as number[]);
  for (let t = 0; t < turns; t++) {
    for (const [i, [, fn]] of cases.entries()) {
      const start = process.cpuUsage();
      await run(fn, batch);
      const used = process.cpuUsage(start);
      perCall[i]?.push(((used.user + used.system) * 1000) / batch);
    }
  }
  const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const first = perCall[0] ?? [];
  return cases.map(([name], i) => {
    const own = perCall[i] ?? [];
    return { name, nsPerOp: median(own), ratio: median(own.map((ns, t) => ns / (first[t] ?? Number.NaN))) };
  });
}

/** Prints cases measured by `cpuInTurns`: CPU time per call and, unless `ratios` is false, the ratio to the first case. */
export function reportCpuTurns(title: string, rows: readonly CpuTurns[], ratios = true): void {
  console.log(`  ${title}`);
  for (const [i, m] of rows.entries()) {
    const ratio = !ratios ? "" : i === 0 ? "1.00 (base)" : m.ratio.toFixed(2);
    console.log(`    ${m.name.padEnd(50)} ${formatNs(m.nsPerOp).padStart(12)} ${ratio.padStart(12)}`);
  }
}

/** Prints one absolute target against CPU time measured by `cpuInTurns`. */
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
