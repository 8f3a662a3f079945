import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const gate = fileURLToPath(new URL("postgres.ts", import.meta.url));

/** Imports the Postgres gate in a fresh process with `env`; returns its exit status and standard error. */
function importGate(env: Record<string, string>): { status: number | null; stderr: string } {
  const rest = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== "DATABASE_URL" && name !== "CI"));
  const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", `await import(${JSON.stringify(gate)});`], {
    env: { ...rest, ...env },
    encoding: "utf8",
  });
  return { status: run.status, stderr: run.stderr };
}

describe("the one Postgres gate", () => {
  it("refuses to let CI pass without a database, whether DATABASE_URL is unset or empty", () => {
    for (const env of [{ CI: "true" }, { CI: "1", DATABASE_URL: "" }]) {
      const { status, stderr } = importGate(env);
      expect(status).not.toBe(0);
      expect(stderr).toContain("CI is set but DATABASE_URL is unset");
    }
  });

  it("lets a developer's run skip the Postgres suites, and runs them when DATABASE_URL is set", () => {
    expect(importGate({}).status).toBe(0);
    expect(importGate({ CI: "false" }).status).toBe(0);
    expect(importGate({ CI: "true", DATABASE_URL: "postgres://postgres@127.0.0.1:5432/test" }).status).toBe(0);
  });
});
