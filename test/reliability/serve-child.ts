/**
 * The `agentcap` command in a process of its own, run from source: the fault
 * tests start `serve` with it, and kill it.
 */
import { main } from "../../src/cli/main.ts";

await main(process.argv);
