import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CapabilityDenied, InvalidInput } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { createFileSystem } from "../../src/resources/fs/file-system.ts";
import { fileTools } from "../../src/tools/builtin/files.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { traceFs } from "../resources/fs-trace.ts";
import { memorySink } from "./memory-sink.ts";

const root = realpathSync(mkdtempSync(join(tmpdir(), "agentcap-files-")));
const uploads = join(root, "uploads");
const home = join(root, "home");
mkdirSync(uploads);
mkdirSync(join(home, ".ssh"), { recursive: true });
writeFileSync(join(uploads, "report.txt"), "Q3 revenue grew 12%.");
writeFileSync(join(home, ".ssh", "id_rsa"), "PRIVATE KEY");
symlinkSync(join(home, ".ssh", "id_rsa"), join(uploads, "innocent.txt"));
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function setup() {
  const tools = fileTools(createFileSystem({ baseDir: root }));
  const mint = createMint({ issuer: "t", policy: () => ({ tools: ["read_file", "write_file", "list_files"], fs: [{ path: uploads, ops: ["read", "write", "list"] }] }) });
  const sink = memorySink();
  return { cap: mint.issue({ id: "alice" }), sink, dispatcher: createDispatcher({ tools: [tools.read, tools.write, tools.list], audit: sink }) };
}

describe("file tools", () => {
  it("read, list and write inside the grant, with relative paths resolved against the workspace", async () => {
    const { dispatcher, cap } = setup();
    await expect(dispatcher.call("read_file", { path: "uploads/report.txt" }, cap)).resolves.toEqual({ path: "uploads/report.txt", text: "Q3 revenue grew 12%." });
    await expect(dispatcher.call("write_file", { path: join(uploads, "summary.txt"), content: "short" }, cap)).resolves.toEqual({ path: join(uploads, "summary.txt"), bytes: 5 });
    expect(readFileSync(join(uploads, "summary.txt"), "utf8")).toBe("short");
    const listed = (await dispatcher.call("list_files", { path: uploads }, cap)) as { entries: { name: string }[] };
    expect(listed.entries.map((e) => e.name)).toEqual(["innocent.txt", "report.txt", "summary.txt"]);
  });

  it("denies paths outside the grant however they are spelled (written outside: before the handler runs)", async () => {
    const { dispatcher, cap, sink } = setup();
    await expect(dispatcher.call("read_file", { path: join(home, ".ssh", "id_rsa") }, cap)).rejects.toThrow(CapabilityDenied);
    await expect(dispatcher.call("read_file", { path: "uploads/../home/.ssh/id_rsa" }, cap)).rejects.toThrow(CapabilityDenied);
    // A link inside the grant is judged by where it really leads, and the denial does not say where that is.
    const viaLink = dispatcher.call("read_file", { path: "uploads/innocent.txt" }, cap);
    await expect(viaLink).rejects.toThrow(CapabilityDenied);
    await expect(viaLink).rejects.toThrow(new RegExp(`does not grant read on ${join(uploads, "innocent.txt")}$`));
    await expect(dispatcher.call("write_file", { path: join(home, "evil"), content: "x" }, cap)).rejects.toThrow(CapabilityDenied);
    expect(existsSync(join(home, "evil"))).toBe(false);
    expect(sink.toolEvents().map((e) => e.request)).toEqual([
      { action: "fs.read", path: join(home, ".ssh", "id_rsa") },
      { action: "fs.read", path: join(home, ".ssh", "id_rsa") },
      // Allowed as written, so the handler ran, and the file system denied the real path (its own event records which).
      { action: "tool.call", tool: "read_file" },
      { action: "fs.write", path: join(home, "evil") },
    ]);
  });

  it("follows a link that stays inside the grant: its needs name the path as written and its real path", async () => {
    const { dispatcher, cap } = setup();
    symlinkSync("report.txt", join(uploads, "alias.txt"));
    const planned = await dispatcher.plan("read_file", { path: "uploads/alias.txt" }, cap);
    expect(planned.needs).toEqual([
      { action: "fs.read", path: join(uploads, "alias.txt") },
      { action: "fs.read", path: join(uploads, "report.txt") },
    ]);
    await expect(dispatcher.call("read_file", { path: "uploads/alias.txt" }, cap)).resolves.toMatchObject({ text: "Q3 revenue grew 12%." });
  });

  it("looks at nothing while working out the needs of a path written outside the grant", async () => {
    const { dispatcher, cap } = setup();
    const trace = traceFs();
    try {
      await expect(dispatcher.call("read_file", { path: "/proc/self/cwd/package.json" }, cap)).rejects.toThrow(CapabilityDenied);
      await expect(dispatcher.call("read_file", { path: join(home, ".ssh", "id_rsa") }, cap)).rejects.toThrow(/does not grant read on \S+\/id_rsa$/);
    } finally {
      trace.stop();
    }
    expect(trace.touches()).toEqual([]);
  });

  it("refuses a path with a NUL byte as invalid input", async () => {
    const { dispatcher, cap } = setup();
    await expect(dispatcher.call("read_file", { path: "uploads/a\0b" }, cap)).rejects.toThrow(InvalidInput);
  });
});
