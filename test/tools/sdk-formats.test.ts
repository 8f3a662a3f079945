import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createManualClock, createMint } from "../../src/index.ts";
import { defineTool } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { anthropicTools, langChainTools, openAiTools, vercelAiTools } from "../../src/tools/sdk-formats.ts";
import { memorySink } from "./memory-sink.ts";

/*
 * The catalog in each agent SDK's tool format: the same tools (only those
 * the capability reaches), the same descriptions and input schemas, as
 * plain JSON.
 */

const tool = (name: string) =>
  defineTool({ name, description: `The ${name} tool.`, input: z.object({ id: z.number().int() }), needs: () => [{ action: "tool.call", tool: name }] }, () => "ok");

describe("tool exports for agent SDKs", () => {
  const dispatcher = createDispatcher({ tools: [tool("lookup"), tool("refund")], audit: memorySink() });
  const cap = createMint({ issuer: "sdk", clock: createManualClock(0), policy: () => ({ tools: ["lookup"] }) }).issue({ id: "a" });
  const catalog = dispatcher.catalog(cap);
  const schema = catalog[0]?.inputSchema;

  it("list only the tools the capability reaches, in each SDK's shape, as plain JSON", () => {
    expect(catalog.map((t) => t.name)).toEqual(["lookup"]);
    expect(schema).toMatchObject({ type: "object", properties: { id: { type: "integer" } }, required: ["id"] });
    const formats = {
      openai: openAiTools(catalog),
      anthropic: anthropicTools(catalog),
      vercel: vercelAiTools(catalog),
      langchain: langChainTools(catalog),
    };
    expect(formats).toEqual({
      openai: [{ type: "function", function: { name: "lookup", description: "The lookup tool.", parameters: schema } }],
      anthropic: [{ name: "lookup", description: "The lookup tool.", input_schema: schema }],
      vercel: { lookup: { description: "The lookup tool.", inputSchema: schema } },
      langchain: [{ name: "lookup", description: "The lookup tool.", schema }],
    });
    expect(JSON.parse(JSON.stringify(formats))).toEqual(formats);
  });
});
