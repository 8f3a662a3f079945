/** What the shared windowed-rate tests share: calling until the window is full, and a racer in another process. */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import type { Capability } from "../../src/kernel/capability.ts";
import { verifyShared, type VerifyOptions } from "../../src/token/token.ts";
import { authorize } from "../../src/index.ts";

export const call = { action: "tool.call", tool: "search" } as const;

/**
 * Calls until a call is refused, asks the store for more room (as a verifier
 * does), and stops when a call is refused again: the window had no room left
 * to reserve, and none comes back within the test's hour-long window. Yields
 * between calls so racers in this process interleave. Returns the calls admitted.
 */
export async function admitAll(cap: Capability, token: string, options: VerifyOptions): Promise<number> {
  let admitted = 0;
  for (;;) {
    if (authorize(cap, call).allowed) admitted++;
    else {
      await verifyShared(token, options);
      if (authorize(cap, call).allowed) admitted++;
      else return admitted;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A racer in another process, ready and waiting for `go`. */
export interface Racer {
  readonly process: ChildProcess;
  /** Tells it to go; resolves with the calls it admitted, once it has exited. */
  go(): void;
  readonly admitted: Promise<number>;
}

export async function startRacer(kind: "sqlite" | "postgres", where: string, token: string, publicKey: string): Promise<Racer> {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("rates-child.ts", import.meta.url)), kind, where, token, publicKey], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => String((await lines.next()).value);
  expect(await next()).toBe("ready");
  const admitted = (async () => {
    const line = await next();
    expect(line).toMatch(/^admitted \d+$/);
    if (child.exitCode === null) await new Promise((resolve) => child.once("exit", resolve));
    expect(child.exitCode).toBe(0);
    return Number(line.split(" ")[1]);
  })();
  return { process: child, go: () => {
      child.stdin.write("go\n");
    }, admitted };
}
