import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/*
 * The package as a user meets it: how long importing each entry takes in a
 * fresh process (against importing zod alone, in the same run), and the
 * published tarball's size and file count.
 */
const root = fileURLToPath(new URL("../", import.meta.url));
const ENTRIES = ["agentcap", "agentcap/fs", "agentcap/http", "agentcap/sql", "agentcap/exec", "agentcap/tools", "agentcap/audit", "agentcap/token", "agentcap/runtime", "agentcap/mcp", "agentcap/testing"];
const RUNS = 7;

/** Median time the `import()` of `specifier` takes in a fresh node process (the process's own start-up not counted). */
function importMs(specifier: string): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const code = `const t = performance.now(); await import(${JSON.stringify(specifier)}); process.stdout.write(String(performance.now() - t));`;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", code], { cwd: root, encoding: "utf8" });
    if (run.status !== 0) throw new Error(`importing ${specifier} failed: ${run.stderr}`);
    times.push(Number(run.stdout));
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(RUNS / 2)] ?? Number.NaN;
}

export function runPackageBench(): void {
  console.log("\npackage: time to import an entry in a fresh process (median of 7), against zod alone");
  const zod = importMs("zod");
  console.log(`  ${"zod (baseline)".padEnd(24)} ${zod.toFixed(1).padStart(8)} ms ${"1.00".padStart(8)}`);
  for (const entry of ENTRIES) {
    const ms = importMs(entry);
    console.log(`  ${entry.padEnd(24)} ${ms.toFixed(1).padStart(8)} ms ${(ms / zod).toFixed(2).padStart(8)}`);
  }

  const dir = mkdtempSync(path.join(tmpdir(), "agentcap-pack-"));
  try {
    const pack = spawnSync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: root, encoding: "utf8" });
    if (pack.status !== 0) throw new Error(`npm pack failed: ${pack.stderr}`);
    const [info] = JSON.parse(pack.stdout) as { filename: string; size: number; unpackedSize: number; entryCount: number }[];
    if (info === undefined) throw new Error("npm pack printed nothing");
    const bytes = statSync(path.join(dir, info.filename)).size;
    console.log(`  tarball ${info.filename}: ${(bytes / 1024).toFixed(1)} KiB packed, ${(info.unpackedSize / 1024).toFixed(1)} KiB unpacked, ${info.entryCount} files`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
