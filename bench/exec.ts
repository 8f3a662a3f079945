import { spawn } from "node:child_process";
import { realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { createMint } from "../src/index.ts";
import { createExec } from "../src/resources/exec/runner.ts";
import { measureAsync, report } from "./harness.ts";

const ITER = 50;

/** Resolves when a directly spawned program has exited and its pipes are closed. */
function spawnDirect(program: string, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, [], { cwd, env: {}, stdio: ["ignore", "pipe", "pipe"] });
    child.on("error", reject);
    child.on("close", () => { resolve(); });
  });
}

/** A confined run of /bin/true against spawning it directly, as a ratio in one run. */
export async function runExecBench(): Promise<void> {
  const program = realpathSync("/bin/true");
  const cwd = realpathSync(tmpdir());
  const mint = createMint({
    issuer: "bench",
    // The link is granted by name too: a run is decided on the program as named and on its real path.
    policy: () => ({ exec: [{ program, args: [], cwd }, { program: "/bin/true", args: [], cwd }], fs: [{ path: cwd, ops: ["list"] }] }),
  });
  const cap = mint.issue({ id: "bench-user" });
  const exec = createExec();

  const baseline = await measureAsync("direct spawn of /bin/true (baseline)", () => spawnDirect(program, cwd), ITER);
  const confined = await measureAsync("confined exec.run of /bin/true", () => exec.run(cap, [program], { cwd }), ITER);
  const viaLink = await measureAsync("confined exec.run of /bin/true via /bin symlink", () => exec.run(cap, ["/bin/true"], { cwd }), ITER);
  // Validation and the decisions on the run as written, then refused before anything is looked at.
  const checksOnly = await measureAsync("denied exec.run (refused as written, no spawn)", () => exec.run(cap, [program, "x"], { cwd }).catch(() => undefined), ITER * 20);
  report("exec: subprocess", baseline, [confined, viaLink, checksOnly]);
}
