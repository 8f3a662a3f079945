import { describe, expect, it } from "vitest";
import { InvalidInput, NotACapability } from "../../src/kernel/errors.ts";
import type { Capability } from "../../src/kernel/capability.ts";
import { createExecutor, type ExecutorOptions } from "../../src/runtime/executor.ts";
import { scriptedModel } from "../../src/testing/scripted-model.ts";
import { defineTool } from "../../src/tools/define.ts";
import { z } from "zod";
import { createWorld, dispatcherFor } from "./world.ts";
import { check, narrow } from "../../src/index.ts";

function setup() {
  const world = createWorld();
  const dispatcher = dispatcherFor(world);
  const alice = world.mint.issue({ id: "alice", tenants: ["acme"] });
  return { world, dispatcher, alice };
}

describe("Executor", () => {
  it("shows the model names, descriptions and input schemas only, and never a capability", async () => {
    const { world, dispatcher, alice } = setup();
    const cap = narrow(alice, { tools: ["read_file", "write_file"], fs: [{ path: "/srv/uploads", ops: ["read"] }] });
    const model = scriptedModel([
      { calls: [{ tool: "read_file", input: { path: "/srv/uploads/notes.txt" } }, { tool: "write_file", input: { path: "/srv/uploads/x", content: "y" } }] },
      { text: "ok" },
    ]);
    const agent = createExecutor({ dispatcher, capability: cap, model, instructions: "Be brief." });
    expect(agent.tools().map((t) => t.name)).toEqual(["read_file", "write_file"]);
    await agent.run("go");

    const shown = model.doGenerateCalls[0]?.tools ?? [];
    expect(shown).toEqual([
      { type: "function", name: "read_file", description: "Read a text file.", inputSchema: world.readFile.inputSchema },
      { type: "function", name: "write_file", description: "Write a text file.", inputSchema: world.writeFile.inputSchema },
    ]);
    // Nothing the model ever received names a capability, a link or a hash.
    const everything = JSON.stringify(model.doGenerateCalls);
    for (const e of world.sink.toolEvents()) {
      for (const link of e.subject.lineage) {
        expect(everything).not.toContain(link.id);
        expect(everything).not.toContain(link.hash);
      }
    }
    // The refusal reached the model as a reason it can act on.
    expect(everything).toContain("ERR_CAPABILITY_DENIED: the capability does not grant write on /srv/uploads/x");
  });

  it("reports a call to a tool it was not shown as unavailable, and still has the dispatcher decide and audit it", async () => {
    const { world, dispatcher, alice } = setup();
    const agent = createExecutor({
      dispatcher,
      capability: narrow(alice, { tools: ["read_file"], fs: [{ path: "/srv", ops: ["read"] }] }),
      model: scriptedModel([{ calls: [{ tool: "write_file", input: { path: "/srv/x", content: "" } }] }, { text: "ok" }]),
    });
    const result = await agent.run("go");
    expect(result.calls).toMatchObject([{ tool: "write_file", verdict: "denied", code: "ERR_CAPABILITY_DENIED" }]);
    expect(world.sink.toolEvents()).toMatchObject([{ tool: "write_file", decision: { allowed: false, rule: "tools" } }]);
  });

  it("reports invalid input and a tool's own failure to the model without stopping the loop", async () => {
    const { dispatcher, alice } = setup();
    const agent = createExecutor({
      dispatcher,
      capability: alice,
      model: scriptedModel([{ calls: [{ tool: "read_file", input: { path: "relative" } }] }, { calls: [{ tool: "read_record", input: { model: "Order", id: 1.5 } }] }, { text: "gave up" }]),
    });
    const result = await agent.run("go");
    expect(result.text).toBe("gave up");
    expect(result.calls.map((c) => [c.verdict, c.code])).toEqual([
      ["failed", "ERR_INVALID_INPUT"],
      ["failed", "ERR_INVALID_INPUT"],
    ]);
    expect(result.calls[0]?.message).toMatch(/^invalid input for tool read_file: path: /);
  });

  it("delegates to a sub-agent that can never hold more than its parent, and revokes it when it finishes", async () => {
    const world = createWorld(["stash"]);
    const stashed: Capability[] = [];
    const stash = defineTool({ name: "stash", description: "Keeps its capability.", input: z.object({}), needs: () => [] }, (_i, cap) => {
      stashed.push(cap);
      return "kept";
    });
    const dispatcher = dispatcherFor(world, [stash]);
    const alice = world.mint.issue({ id: "alice", tenants: ["acme"] });
    const parent = createExecutor({ name: "parent", dispatcher, capability: narrow(alice, { tools: ["read_file", "stash"], fs: [{ path: "/srv/uploads", ops: ["read"] }] }), model: scriptedModel([]) });
    const result = await parent.delegate({
      name: "child",
      // Asks for more than the parent holds: write access and another tool.
      grant: { tools: ["read_file", "write_file", "stash"], fs: [{ path: "/srv", ops: ["read", "write"] }] },
      model: scriptedModel([
        {
          calls: [
            { tool: "read_file", input: { path: "/srv/uploads/notes.txt" } },
            { tool: "write_file", input: { path: "/srv/uploads/x", content: "" } },
            { tool: "stash", input: {} },
          ],
        },
        { text: "child done" },
      ]),
      prompt: "read and write",
    });
    expect(result.text).toBe("child done");
    expect(result.calls.map((c) => [c.agent, c.tool, c.verdict]).sort()).toEqual([
      ["child", "read_file", "allowed"],
      ["child", "stash", "allowed"],
      ["child", "write_file", "denied"],
    ]);
    expect(world.files.has("/srv/uploads/x")).toBe(false);
    const childLink = world.sink.toolEvents().find((e) => e.tool === "read_file")?.subject.lineage.find((l) => l.labels.agent === "child");
    expect(childLink?.revocable).toBe(true);
    // Everything derived from the child's forwarder died with it.
    expect(check(stashed[0] as Capability, { action: "tool.call", tool: "stash", tenant: "acme" })).toMatchObject({
      code: "ERR_REVOKED",
      linkId: childLink?.id,
      reason: expect.stringContaining("sub-agent child has finished") as string,
    });
  });

  it("never hands a capability to the model, even when a tool returns one", async () => {
    const world = createWorld(["leak"]);
    const leak = defineTool({ name: "leak", description: "Returns its capability.", input: z.object({}), needs: () => [] }, (_i, cap) => ({ cap }));
    const dispatcher = dispatcherFor(world, [leak]);
    const model = scriptedModel([{ calls: [{ tool: "leak", input: {} }] }, { text: "ok" }]);
    const agent = createExecutor({ dispatcher, capability: world.mint.issue({ id: "alice", tenants: ["acme"] }), model });
    const result = await agent.run("go");
    expect(result.calls).toMatchObject([{ tool: "leak", verdict: "failed", code: "ERR_NOT_A_CAPABILITY" }]);
    expect(JSON.stringify(model.doGenerateCalls[1]?.prompt)).toContain("a capability cannot be serialized");
  });

  it("keeps a tool named __proto__ an ordinary tool", async () => {
    const world = createWorld(["__proto__"]);
    const odd = defineTool({ name: "__proto__", description: "Oddly named.", input: z.object({}), needs: () => [] }, () => "fine");
    const model = scriptedModel([{ calls: [{ tool: "__proto__", input: {} }] }, { text: "ok" }]);
    const agent = createExecutor({ dispatcher: dispatcherFor(world, [odd]), capability: world.mint.issue({ id: "alice", tenants: ["acme"] }), model });
    expect((await agent.run("go")).calls).toMatchObject([{ tool: "__proto__", verdict: "allowed" }]);
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });

  it("stops the loop when its signal aborts", async () => {
    const { dispatcher, alice } = setup();
    const controller = new AbortController();
    const agent = createExecutor({
      dispatcher,
      capability: alice,
      model: scriptedModel([
        () => {
          controller.abort(new Error("stop"));
          return { calls: [{ tool: "read_file", input: { path: "/srv/uploads/notes.txt" } }] };
        },
        { text: "never" },
      ]),
    });
    await expect(agent.run("go", { signal: controller.signal })).rejects.toThrow();
  });

  it.each([
    ["a forged capability", { capability: {} }, NotACapability],
    ["no dispatcher", { dispatcher: undefined }, /needs a dispatcher/],
    ["no model", { model: undefined }, /needs a language model/],
    ["zero steps", { maxSteps: 0 }, /maxSteps must be an integer from 1 to 1000/],
    ["an empty name", { name: "" }, /name must be a string of 1 to 128/],
  ])("refuses %s", (_what, patch, error) => {
    const { dispatcher, alice } = setup();
    const base: ExecutorOptions = { dispatcher, capability: alice, model: scriptedModel([]) };
    const options = Object.fromEntries(Object.entries({ ...base, ...patch }).filter(([, v]) => v !== undefined)) as unknown as ExecutorOptions;
    expect(() => createExecutor(options)).toThrow(error);
  });

  it("refuses an empty prompt and a delegate without a name", async () => {
    const { dispatcher, alice } = setup();
    const agent = createExecutor({ dispatcher, capability: alice, model: scriptedModel([]) });
    await expect(agent.run("")).rejects.toThrow(InvalidInput);
    await expect(agent.delegate({ name: "", grant: {}, model: scriptedModel([]), prompt: "x" })).rejects.toThrow(/needs a name/);
  });
});
