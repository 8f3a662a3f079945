import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { openAuditStore } from "../src/audit/open.ts";
import type { AuditSink } from "../src/kernel/audit-sink.ts";
import { createMint } from "../src/kernel/mint.ts";
import { createFileSystem } from "../src/resources/fs/index.ts";
import { compileToolModule } from "../src/sandbox/compile.ts";
import { loadBuiltinTools, loadToolModule } from "../src/sandbox/index.ts";
import { createDispatcher } from "../src/tools/dispatcher.ts";
import { interleaved, report, type Measurement } from "./harness.ts";

const ITER = 2_000;
const LOADS = 5;
const MODULE = fileURLToPath(new URL("./sandbox/read-tool.ts", import.meta.url));


/** A worker thread that only says it is ready: the floor under every sandbox's start. */
async function startBareWorker(): Promise<void> {
  const worker = new Worker(`require("node:worker_threads").parentPort.postMessage("ready")`, { eval: true, env: {}, execArgv: [] });
  await new Promise((resolve) => worker.once("message", resolve));
  await worker.terminate();
}

/** The median time of `runs` sequential runs of `fn`. */
async function median(name: string, fn: () => Promise<unknown>, runs: number): Promise<Measurement> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - start));
  }
  times.sort((a, b) => a - b);
  return { name, nsPerOp: times[Math.floor(runs / 2)] ?? Number.NaN };
}

/**
 * A 4 KiB read tool (dispatcher, automatic attenuation, confined file
 * system) loaded sandboxed against the same module loaded trusted, in one
 * run: once with an audit sink that discards (the sandbox's own cost against
 * the smallest baseline) and once with the SQLite audit store (as a gateway
 * runs). A sandboxed call crosses between threads four times: the call into
 * the worker (whose needs come back while its handler starts), the handler's
 * one read back to this thread, the bytes read, and the result. Then the
 * cost of loading a tool module into a fresh sandbox, against starting a bare
 * worker thread.
 */
export async function runSandboxBench(): Promise<void> {
  const dir = await fs.promises.realpath(await fs.promises.mkdtemp(path.join(os.tmpdir(), "agentcap-bench-sandbox-")));
  const store = await openAuditStore({ kind: "sqlite", path: path.join(dir, "audit.db") });
  try {
    fs.writeFileSync(path.join(dir, "report.txt"), "a".repeat(4096));
    const mint = createMint({ issuer: "bench", policy: () => ({ tools: ["read_text"], fs: [{ path: dir, ops: ["read"] }] }) });
    const cap = mint.issue({ id: "bench-user" });
    const discard: AuditSink = { intend: () => undefined, complete: () => undefined, write: () => undefined };
    const plain = createFileSystem({ baseDir: dir });
    const audited = createFileSystem({ baseDir: dir, audit: store });

    const firstLoad = await median("first load in a process (compiles zod once)", () => loadToolModule(MODULE, { endowments: { files: plain } }).then((m) => m.close()), 1);
    const trusted = await loadToolModule(MODULE, { trusted: true, endowments: { files: plain } });
    const sandboxed = await loadToolModule(MODULE, { endowments: { files: plain } });
    const trustedAudited = await loadToolModule(MODULE, { trusted: true, endowments: { files: audited } });
    const sandboxedAudited = await loadToolModule(MODULE, { endowments: { files: audited } });
    try {
      const args = { name: "report.txt" };
      const call = (tools: typeof trusted.tools, audit: AuditSink) => {
        const dispatcher = createDispatcher({ tools, audit });
        return () => dispatcher.call("read_text", args, cap);
      };
      const [base, sandboxedRow] = await interleaved(
        [
          ["trusted read tool, 4 KiB, audit discarded (baseline)", call(trusted.tools, discard)],
          ["sandboxed read tool, 4 KiB, audit discarded", call(sandboxed.tools, discard)],
        ],
        ITER,
      );
      report("sandbox: a 4 KiB read tool, sandboxed against trusted", base as Measurement, [sandboxedRow as Measurement]);
      const [baseAudited, sandboxedAuditedRow] = await interleaved(
        [
          ["trusted read tool, 4 KiB, SQLite audit store (baseline)", call(trustedAudited.tools, store)],
          ["sandboxed read tool, 4 KiB, SQLite audit store", call(sandboxedAudited.tools, store)],
        ],
        ITER / 2,
      );
      report("sandbox: the same, recording tool and file events in the SQLite audit store", baseAudited as Measurement, [sandboxedAuditedRow as Measurement]);
      const builtinTrusted = await loadBuiltinTools({ files: plain }, { trusted: true });
      const builtinSandboxed = await loadBuiltinTools({ files: plain });
      try {
        const builtinCap = createMint({ issuer: "bench", policy: () => ({ tools: ["read_file"], fs: [{ path: dir, ops: ["read"] }] }) }).issue({ id: "bench-user" });
        const read = (tools: typeof trusted.tools) => {
          const dispatcher = createDispatcher({ tools, audit: discard });
          return () => dispatcher.call("read_file", { path: path.join(dir, "report.txt") }, builtinCap);
        };
        const [builtinBase, builtinRow] = await interleaved(
          [
            ["built-in read_file, handler in-process, 4 KiB (baseline)", read(builtinTrusted.tools)],
            ["built-in read_file, handler sandboxed, 4 KiB", read(builtinSandboxed.tools)],
          ],
          ITER,
        );
        report("sandbox: the built-in read_file, handler sandboxed against in-process", builtinBase as Measurement, [builtinRow as Measurement]);
      } finally {
        await builtinSandboxed.close();
      }
    } finally {
      await sandboxed.close();
      await sandboxedAudited.close();
    }

    const bareWorker = await median("start a bare worker thread and stop it (baseline)", startBareWorker, LOADS);
    const loads = [
      await median("compile the module (esbuild; zod already compiled)", () => compileToolModule({ path: MODULE }), LOADS),
      await median("load the module sandboxed (worker, SES lockdown, zod, the module)", () => loadToolModule(MODULE, { endowments: { files: plain } }).then((m) => m.close()), LOADS),
      firstLoad,
    ];
    report("sandbox: loading a tool module", bareWorker, loads);
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
