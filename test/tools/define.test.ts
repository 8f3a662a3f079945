import { describe, expect, it } from "vitest";
import { z } from "zod";
import { Capability, check, narrow, restrict, revocable } from "../../src/kernel/capability.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { defineTool, isTool, type ToolSpec } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink } from "./memory-sink.ts";

const input = z.object({ path: z.string().describe("absolute path") });
const spec: ToolSpec<typeof input> = { name: "read_file", description: "Read a file.", input, needs: ({ path }) => [{ action: "fs.read", path }] };
const handler = () => "ok";

describe("defineTool", () => {
  it("returns a frozen tool whose input JSON schema comes from the zod schema alone", () => {
    const tool = defineTool(spec, handler);
    expect(Object.isFrozen(tool)).toBe(true);
    expect(Object.isFrozen(tool.inputSchema)).toBe(true);
    expect(tool.inputSchema).toMatchObject({ type: "object", properties: { path: { type: "string", description: "absolute path" } }, required: ["path"] });
    expect(JSON.stringify(tool.inputSchema)).not.toMatch(/capab/i);
    expect(isTool(tool)).toBe(true);
    expect(isTool({ ...tool })).toBe(false);
  });

  it.each([
    ["a bad name", { ...spec, name: "read file" }, /tool name must be 1 to 64 letters/],
    ["an empty description", { ...spec, description: " " }, /description must be a non-empty string/],
    ["a non-object input schema", { ...spec, input: z.string() }, /input must be a zod object schema/],
    ["needs that is not a function", { ...spec, needs: [] }, /needs must be a function/],
  ])("refuses %s", (_what, bad, message) => {
    expect(() => defineTool(bad as unknown as ToolSpec<typeof input>, handler)).toThrow(message);
    expect(() => defineTool(bad as unknown as ToolSpec<typeof input>, handler)).toThrow(InvalidInput);
  });

  it("refuses a handler that is not a function", () => {
    expect(() => defineTool(spec, "nope" as unknown as typeof handler)).toThrow(/handler must be a function/);
  });

  it("refuses an input schema that would carry a capability, since it cannot be shown to a model", () => {
    const withCap = z.object({ path: z.string(), capability: z.instanceof(Capability) });
    expect(() => defineTool({ ...spec, input: withCap }, handler)).toThrow(/cannot be shown to a model as JSON schema/);
  });
});

describe("createDispatcher", () => {
  it.each([
    ["no tools array", { audit: memorySink() }, /needs tools/],
    ["a non-tool", { tools: [{ name: "x" }], audit: memorySink() }, /tools\.0 is not a tool made by defineTool/],
    ["a duplicate name", { tools: [defineTool(spec, handler), defineTool(spec, handler)], audit: memorySink() }, /tools\.1: a tool named read_file is already registered/],
    ["no audit sink", { tools: [] }, /needs audit: an AuditSink/],
  ])("refuses %s", (_what, options, message) => {
    expect(() => createDispatcher(options as never)).toThrow(message);
  });

  it("refuses a tool object it does not hold, even one with a registered name", async () => {
    const mint = createMint({ issuer: "t", policy: () => ({ tools: ["read_file"] }) });
    const registered = defineTool(spec, handler);
    const impostor = defineTool(spec, () => "evil");
    const d = createDispatcher({ tools: [registered], audit: memorySink() });
    await expect(d.call(impostor, { path: "/a" }, mint.issue({ id: "a" }))).rejects.toThrow(/a tool registered with this dispatcher/);
  });
});

describe("plan", () => {
  it("works out a call's needs and grant without charging, and refuses a forged capability or unknown tool", async () => {
    const mint = createMint({ issuer: "t", policy: () => ({ tools: ["read_file"], fs: [{ path: "/", ops: ["read"] }] }) });
    const d = createDispatcher({ tools: [defineTool(spec, handler)], audit: memorySink() });
    const cap = restrict(mint.issue({ id: "a" }), { maxUses: 1 });
    const plan = await d.plan("read_file", { path: "/a" }, cap);
    expect(plan.grant).toEqual({ fs: [{ path: "/a", ops: ["read"], subtree: false }] });
    expect(check(cap, { action: "tool.call", tool: "read_file" }).allowed).toBe(true);
    await expect(d.plan("read_file", { path: "/a" }, {} as never)).rejects.toThrow(/needs the capability/);
    await expect(d.plan("nope", {}, cap)).rejects.toThrow(/no tool named nope/);
    expect(() => d.catalog(cap, { tenant: "" })).toThrow(InvalidInput);
  });
});

describe("catalog", () => {
  const tools = ["read_file", "write_file", "fetch_url"].map((name) => defineTool({ ...spec, name, description: `The ${name} tool.` }, handler));
  const mint = createMint({ issuer: "t", policy: () => ({ tools: ["read_file", "fetch_url"] }) });

  it("lists only the tools a capability reaches, as name, description and input schema", () => {
    const d = createDispatcher({ tools, audit: memorySink() });
    const cap = mint.issue({ id: "a" });
    expect(d.catalog(cap).map((e) => e.name)).toEqual(["read_file", "fetch_url"]);
    expect(Object.keys(d.catalog(cap)[0] ?? {})).toEqual(["name", "description", "inputSchema"]);
    expect(d.catalog(narrow(cap, { tools: ["fetch_url", "write_file"] })).map((e) => e.name)).toEqual(["fetch_url"]);
  });

  it("charges nothing and empties once the capability is revoked", () => {
    const d = createDispatcher({ tools, audit: memorySink() });
    const lease = revocable(restrict(mint.issue({ id: "a" }), { maxUses: 1 }));
    d.catalog(lease.capability);
    expect(check(lease.capability, { action: "tool.call", tool: "read_file" }).allowed).toBe(true);
    lease.revoke();
    expect(d.catalog(lease.capability)).toEqual([]);
  });
});
