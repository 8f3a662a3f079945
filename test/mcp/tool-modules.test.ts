import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InvalidInput, SandboxTimeout, SandboxViolation } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { loadGatewayConfig, parseGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { NOTES_MODULE } from "../sandbox/world.ts";
import { makeFixture, type Fixture } from "./support.ts";

/*
 * What a gateway serves of its own runs sandboxed unless its configuration
 * says otherwise: the built-in tools' handlers, and every tool module it
 * loads; and its resources and dispatcher accept only roots its own keys
 * signed.
 */

const SNEAKY_MODULE = path.join(path.dirname(NOTES_MODULE), "sneaky.ts");
const SPIN_MODULE = path.join(path.dirname(NOTES_MODULE), "spin.ts");

let fixture: Fixture | undefined;
let gateway: Gateway | undefined;

afterEach(async () => {
  await gateway?.close();
  fixture?.cleanup();
  [gateway, fixture] = [undefined, undefined];
});

async function open(tools: Record<string, unknown>, roles: Record<string, unknown> = {}, log?: (line: string) => void): Promise<Gateway> {
  fixture = makeFixture({
    tools: { files: { root: "workspace" }, ...tools },
    policy: {
      roles: { reader: { tools: ["read_file", "read_note", "sneaky", "greet", "spin", "count"], fs: [{ path: "workspace/public", ops: ["read", "list"] }, { path: "workspace/note.txt", ops: ["read"] }] }, ...roles },
      principals: { alice: { roles: ["reader"] } },
    },
  });
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile), log === undefined ? {} : { log });
  return gateway;
}

async function toolEvents(g: Gateway, tool: string) {
  return (await g.audit.query({})).filter((r) => r.event.kind === "tool" && r.event.tool === tool).map((r) => r.event);
}

describe("a gateway's own tools", () => {
  it("run a module's handler once per call, and tell the operator's log when its sandbox is stopped; the next call runs in a fresh one", async () => {
    const logged: string[] = [];
    const g = await open({ modules: [{ path: SPIN_MODULE, timeoutMs: 300 }] }, {}, (line) => logged.push(line));
    const alice = await g.authenticate(g.issueToken("alice"));
    // Once per call: the handler a call's needs started is the one the call runs, however long its intent took to be durable.
    const counts = [await g.dispatcher.call("count", {}, alice), await g.dispatcher.call("count", {}, alice), await g.dispatcher.call("count", {}, alice)];
    expect(counts).toEqual([1, 2, 3]);
    await expect(g.dispatcher.call("spin", {}, alice)).rejects.toThrow(SandboxTimeout);
    // Held until the stuck sandbox is stopped, then run in a fresh one.
    await expect(g.dispatcher.call("count", {}, alice)).resolves.toBe(1);
    expect(logged).toEqual([
      `the sandbox of ${SPIN_MODULE} was stopped (timeout: a call of tool spin in it ran past its time limit and the sandbox stopped responding); 0 calls run again in a fresh one, 0 failed; 1 of 5 stops allowed within 60 s`,
    ]);
  });

  it("run the built-in tools' handlers sandboxed by default, and say so in every event", async () => {
    const g = await open({});
    const alice = await g.authenticate(g.issueToken("alice"));
    const file = path.join(fixture?.workspace ?? "", "public", "hello.txt");
    await expect(g.dispatcher.call("read_file", { path: file }, alice)).resolves.toMatchObject({ text: "hello from the workspace\n" });
    const events = await toolEvents(g, "read_file");
    expect(events).toHaveLength(1);
    expect(events).toMatchObject([{ toolCode: "sandboxed", outcome: { ok: true } }]);
  });

  it("run them in this process with tools.trusted, recorded as trusted", async () => {
    const g = await open({ trusted: true });
    const alice = await g.authenticate(g.issueToken("alice"));
    await g.dispatcher.call("read_file", { path: path.join(fixture?.workspace ?? "", "public", "hello.txt") }, alice);
    expect(await toolEvents(g, "read_file")).toEqual([expect.objectContaining({ toolCode: "trusted" })]);
  });

  it("load tool modules sandboxed, endowed with the configured resources they name and plain data", async () => {
    const g = await open({ modules: [{ path: NOTES_MODULE, endow: ["files"], data: { greeting: "Hi" } }] });
    const alice = await g.authenticate(g.issueToken("alice"));
    await expect(g.dispatcher.call("greet", { who: "ada" }, alice)).resolves.toBe("Hi, ada");
    // The module reads through the endowed file system with the call's capability: its grant decides, not the module.
    writeFileSync(path.join(fixture?.workspace ?? "", "note.txt"), "a note");
    writeFileSync(path.join(fixture?.workspace ?? "", "other.txt"), "not granted");
    await expect(g.dispatcher.call("read_note", { name: "note.txt" }, alice)).resolves.toBe("a note");
    await expect(g.dispatcher.call("read_note", { name: "other.txt" }, alice)).rejects.toThrow(/does not grant read/);
    expect(await toolEvents(g, "read_note")).toEqual([expect.objectContaining({ toolCode: "sandboxed" }), expect.objectContaining({ toolCode: "sandboxed" })]);
  });

  it("keep a module's tool code from ambient authority, unless the module is configured trusted", async () => {
    const sandboxed = await open({ modules: [{ path: SNEAKY_MODULE }] });
    const alice = await sandboxed.authenticate(sandboxed.issueToken("alice"));
    await expect(sandboxed.dispatcher.call("sneaky", {}, alice)).rejects.toThrow(SandboxViolation);
    await sandboxed.close();
    fixture?.cleanup();
    const trusted = await open({ modules: [{ path: SNEAKY_MODULE, trusted: true }] });
    const bob = await trusted.authenticate(trusted.issueToken("alice"));
    await expect(trusted.dispatcher.call("sneaky", {}, bob)).resolves.toHaveProperty("hostname");
    expect(await toolEvents(trusted, "sneaky")).toEqual([expect.objectContaining({ toolCode: "trusted" })]);
  });

  it("refuse a root minted in this process by any mint but the gateway's keys, and record the refusal", async () => {
    const g = await open({});
    const forged = createMint({ issuer: "test-gateway", policy: () => ({ tools: ["read_file"], fs: [{ path: "/", ops: ["read"] }] }) }).issue({ id: "alice" });
    const file = path.join(fixture?.workspace ?? "", "public", "hello.txt");
    await expect(g.dispatcher.call("read_file", { path: file }, forged)).rejects.toThrow(/was minted by a mint this resource does not trust/);
    const events = await toolEvents(g, "read_file");
    expect(events).toHaveLength(1);
    expect(events).toMatchObject([{ decision: { allowed: false, rule: "mint" } }]);
  });
});

describe("the configuration of tool modules", () => {
  const base = {
    issuer: "t",
    keys: { file: "keys.json" },
    tokenStore: { kind: "sqlite", path: "tokens.db" },
    audit: { kind: "sqlite", path: "audit.db" },
    policy: { roles: {}, principals: {} },
  };
  const problems = (tools: unknown): string => {
    try {
      parseGatewayConfig({ ...base, tools }, "/srv/gw");
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidInput);
      return (e as Error).message;
    }
    throw new Error("expected the configuration to be refused");
  };

  it("resolves module paths against the file's folder", () => {
    expect(parseGatewayConfig({ ...base, tools: { modules: [{ path: "tools/notes.ts" }] } }, "/srv/gw").tools.modules).toEqual([{ path: "/srv/gw/tools/notes.ts" }]);
  });

  it.each<readonly [unknown, string]>([
    [{ modules: [{ path: "m.ts", endow: ["files"] }] }, "tools.modules.0.endow: endows files, which is not configured (tools.files)"],
    [{ modules: [{ path: "m.ts", endow: ["exec"] }] }, "endows exec, which is not configured (tools.commands)"],
    [{ modules: [{ path: "m.ts", endow: ["process"] }] }, "tools.modules.0.endow.0"],
    [{ modules: [{ path: "m.ts", trusted: true, allow: ["lodash"] }] }, "a trusted module runs unconfined"],
    [{ modules: [{ path: "m.ts", data: { files: "x" } }] }, "data must not use the names of endowed resources"],
    [{ modules: [{ path: "m.ts", data: { "not-an-identifier": 1 } }] }, "tools.modules.0.data.not-an-identifier"],
    [{ modules: [{ path: "m.ts", memoryMb: 1 }] }, "tools.modules.0.memoryMb"],
    [{ modules: [{ path: "" }] }, "tools.modules.0.path: must not be empty"],
    [{ trusted: "yes" }, "tools.trusted"],
  ])("refuses %j with a message naming the field", (tools, message) => {
    expect(problems(tools)).toContain(message);
  });

  it("refuses a module that redefines a built-in tool, and one that does not exist, when the gateway opens", async () => {
    const clash = makeFixture({ tools: { files: { root: "workspace" }, modules: [{ path: path.join(path.dirname(NOTES_MODULE), "notes.ts"), endow: ["files"], data: { greeting: "Hi" } }, { path: path.join(path.dirname(NOTES_MODULE), "notes.ts"), endow: ["files"], data: { greeting: "Hi" } }] } });
    try {
      await expect(openGateway(await loadGatewayConfig(clash.configFile))).rejects.toThrow(/tools .*read_note.* are defined twice/);
    } finally {
      clash.cleanup();
    }
    const missing = makeFixture({ tools: { modules: [{ path: "nowhere.ts" }] } });
    try {
      await expect(openGateway(await loadGatewayConfig(missing.configFile))).rejects.toThrow(/tool module .*nowhere.ts cannot be read/);
    } finally {
      missing.cleanup();
    }
  });
});
