/*
 * The tool module of the sandbox bench: one tool reading a text file through
 * the endowed confined file system, loaded both sandboxed and trusted.
 */
import { z } from "zod";
import { defineTool, type ModuleCapability } from "agentcap/sandbox";

interface Files {
  readonly baseDir: string;
  read(capability: ModuleCapability, path: string): Promise<Uint8Array>;
}

const input = z.object({ name: z.string().min(1) });

export const readText = defineTool<typeof input, string, { readonly files: Files }>(
  {
    name: "read_text",
    description: "Read a text file of the workspace.",
    input,
    needs: ({ name }, { endowments }) => [{ action: "fs.read", path: `${endowments.files.baseDir}/${name}` }],
  },
  async ({ name }, capability, { endowments }) => new TextDecoder().decode(await endowments.files.read(capability, name)),
);
