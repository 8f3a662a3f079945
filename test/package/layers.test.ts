import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/*
 * The layout as DESIGN.md draws it: each layer imports only from the layers
 * below it, and only through their entry (index.ts, the package's face) or
 * internal.ts (what agentcap's own higher layers may use).
 */
const src = fileURLToPath(new URL("../../src/", import.meta.url));
const RANK: Readonly<Record<string, number>> = { kernel: 0, resources: 1, tools: 2, audit: 3, token: 4, sandbox: 5, runtime: 6, testing: 6, web: 6, mcp: 7, cli: 8 };

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? sources(full) : e.name.endsWith(".ts") ? [full] : [];
  });
}

/** The unit a file belongs to: a layer, or for resources the folder of one resource (`resources/fs`), or `resources` for what they share. */
function unitOf(file: string): string {
  const parts = path.relative(src, file).split(path.sep);
  if (parts.length === 1) return "root";
  if (parts[0] === "resources" && parts.length > 2) return `resources/${parts[1] ?? ""}`;
  return parts[0] ?? "";
}

const rankOf = (unit: string): number => RANK[unit.split("/")[0] ?? ""] ?? -1;

function violations(): string[] {
  const found: string[] = [];
  for (const file of sources(src)) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      // The page's sources are bundled by Vite and name their imports without an extension.
      const target = path.resolve(path.dirname(file), (m[1] ?? "").replace(/(\.js|\.ts)?$/, ".ts"));
      const [from, to] = [unitOf(file), unitOf(target)];
      const where = `${path.relative(src, file)} imports ${path.relative(src, target)}`;
      if (from === to || from === "root" || (from.startsWith("resources/") && to === "resources")) continue;
      if (!["index.ts", "internal.ts"].includes(path.basename(target))) found.push(`${where}: not through its entry`);
      if (rankOf(to) >= rankOf(from) && !(from.startsWith("resources/") && to.startsWith("resources/"))) found.push(`${where}: not a layer below`);
    }
  }
  return found;
}

describe("layers", () => {
  it("each folder imports only layers below it, and only through index.ts or internal.ts", () => {
    expect(violations()).toEqual([]);
  });

  it("every layer folder is ranked, so a new one gets a place in the order", () => {
    const folders = readdirSync(src, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(folders.filter((f) => !(f in RANK))).toEqual([]);
  });
});
