import { describe, expect, expectTypeOf, it } from "vitest";
import { z } from "zod";
import { createMint, type Capability, type Request } from "../../src/index.ts";
import { defineTool } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink } from "./memory-sink.ts";

/*
 * A handler's capability is typed from its tool's needs: a tool that needs
 * only fs.read gets a capability that compiles where file reading is
 * required, and not where writing or HTTP is. The runtime narrowing is what
 * decides; these lines are checked by `tsc` in the test command.
 */

const readsFile = (cap: Capability<{ readonly fs: "read" }>) => cap.id;
const writesFile = (cap: Capability<{ readonly fs: "write" }>) => cap.id;
const fetchesUrl = (cap: Capability<{ readonly http: "GET" }>) => cap.id;

describe("handler capability types", () => {
  it("follow the tool's needs", async () => {
    const seen: string[] = [];
    const tool = defineTool(
      {
        name: "peek",
        description: "Read one file.",
        input: z.object({ path: z.string() }),
        needs: ({ path }) => [{ action: "fs.read", path }],
      },
      (_input, cap) => {
        expectTypeOf(cap).toEqualTypeOf<Capability<{ readonly fs: "read"; readonly http: never; readonly db: never; readonly exec: never; readonly tools: never }>>();
        seen.push(readsFile(cap));
        if (seen.length < 0) {
          // @ts-expect-error a read-only handler capability cannot be passed where writing is required
          writesFile(cap);
          // @ts-expect-error nor where HTTP is required
          fetchesUrl(cap);
        }
        return "ok";
      },
    );
    const mint = createMint({ issuer: "t", policy: () => ({ tools: ["peek"], fs: [{ path: "/data", ops: ["read"] }] }) });
    const dispatcher = createDispatcher({ tools: [tool], audit: memorySink() });
    expect(await dispatcher.call(tool, { path: "/data/a.txt" }, mint.issue({ id: "u" }))).toBe("ok");
    expect(seen).toHaveLength(1);
  });

  it("reach nothing when the tool needs nothing", () => {
    const tool = defineTool({ name: "pure", description: "Needs nothing.", input: z.object({}), needs: () => [] }, (_input, cap) => {
      if (cap.depth < 0) {
        // @ts-expect-error a tool that needs nothing holds a capability that reaches nothing
        readsFile(cap);
      }
      return cap.id;
    });
    expect(tool.name).toBe("pure");
  });

  it("are wide when needs are typed only as Request, and the runtime still decides", () => {
    const dynamic = (path: string): readonly Request[] => [{ action: "fs.write", path }];
    const tool = defineTool({ name: "dyn", description: "Decided at run time.", input: z.object({ path: z.string() }), needs: ({ path }) => dynamic(path) }, (_input, cap) => {
      readsFile(cap);
      writesFile(cap);
      return cap.id;
    });
    expect(tool.name).toBe("dyn");
  });
});
