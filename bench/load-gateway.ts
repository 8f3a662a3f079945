/**
 * The built `agentcap` command, for `npm run load`, with what the driver
 * measures inside the gateway. On SIGUSR2 it collects garbage (run it with
 * --expose-gc), optionally writes a heap snapshot (into
 * AGENTCAP_LOAD_SNAPSHOTS, a directory), and prints one line on standard
 * output: its heap and resident memory; how late its event loop ran
 * (p50/p99/max since the last line); and how long its HTTP server took per
 * POST request, from the request's arrival to its response's end (p50/p99/
 * max since the last line). The driver compares these with what its
 * clients saw, to tell where time went.
 */
import { subscribe } from "node:diagnostics_channel";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { writeHeapSnapshot } from "node:v8";
import { main } from "../dist/cli/main.js";

const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();

// Request durations on the server, in ms, since the last report.
const started = new WeakMap<object, number>();
let durations: number[] = [];
subscribe("http.server.request.start", (message) => {
  const { request } = message as { request: { method?: string } };
  if (request.method === "POST") started.set(request, performance.now());
});
subscribe("http.server.response.finish", (message) => {
  const { request } = message as { request: object };
  const t0 = started.get(request);
  if (t0 !== undefined) durations.push(performance.now() - t0);
});

const at = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
const ms = (n: number) => n.toFixed(1);
let snapshots = 0;

process.on("SIGUSR2", () => {
  (globalThis as { gc?: () => void }).gc?.();
  const dir = process.env.AGENTCAP_LOAD_SNAPSHOTS;
  if (dir !== undefined && dir !== "") writeHeapSnapshot(path.join(dir, `gateway-${process.pid}-${++snapshots}.heapsnapshot`));
  const m = process.memoryUsage();
  const sorted = durations.sort((a, b) => a - b);
  const lag = (p: number) => ms(loop.percentile(p) / 1e6);
  process.stdout.write(
    `memory heap=${m.heapUsed} rss=${m.rss} loop_p50=${lag(50)} loop_p99=${lag(99)} loop_max=${ms(loop.max / 1e6)} posts=${sorted.length} post_p50=${ms(at(sorted, 0.5))} post_p99=${ms(at(sorted, 0.99))} post_max=${ms(sorted.at(-1) ?? 0)}\n`,
  );
  loop.reset();
  durations = [];
});
await main(process.argv);
