/**
 * The built `agentcap` command, for `npm run load`, with one addition: on
 * SIGUSR2 it collects garbage (run it with --expose-gc) and prints its heap
 * and resident memory on standard output, so the driver can compare them
 * before and after the sessions.
 */
import { main } from "../dist/cli/main.js";

process.on("SIGUSR2", () => {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  process.stdout.write(`memory heap=${m.heapUsed} rss=${m.rss}\n`);
});
await main(process.argv);
