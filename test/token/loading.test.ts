import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

describe("loading biscuit-wasm", () => {
  it("prints nothing: no ExperimentalWarning, no banner", () => {
    const module = fileURLToPath(new URL("../../src/token/biscuit.ts", import.meta.url));
    const script = `const b = await import(${JSON.stringify(module)}); b.generateKeyPair();`;
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" });
    expect(run.status).toBe(0);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe("");
  });
});
