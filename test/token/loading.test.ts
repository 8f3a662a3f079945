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

  it("two copies of agentcap/token in one process (the built package and the source) each keep their own instance, so both still work once both are loaded", () => {
    const built = fileURLToPath(new URL("../../dist/token/biscuit.js", import.meta.url));
    const source = fileURLToPath(new URL("../../src/token/biscuit.ts", import.meta.url));
    const script = `
      const a = await import(${JSON.stringify(built)});
      const b = await import(${JSON.stringify(source)});
      const keys = [a.generateKeyPair(), b.generateKeyPair(), a.generateKeyPair()];
      process.stdout.write(JSON.stringify(keys.map((k) => [k.publicKey.startsWith("ed25519/"), k.privateKey.startsWith("ed25519-private/")])));
    `;
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([[true, true], [true, true], [true, true]]);
  });
});
