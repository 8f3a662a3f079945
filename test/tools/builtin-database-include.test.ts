import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CapabilityDenied, createManualClock, createMint, InvalidInput, narrow, type DbRule, type Grant } from "../../src/index.ts";
import { createSqlDatabase } from "../../src/resources/sql/database.ts";
import { databaseTools } from "../../src/tools/builtin/database.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { anthropicTools, langChainTools, openAiTools, vercelAiTools } from "../../src/tools/sdk-formats.ts";
import { NOTES_ENGINES, NOTES_RELATED_SCHEMA, NOTES_SCHEMA, type NotesHarness } from "../resources/sql-notes-fixture.ts";
import { memorySink } from "./memory-sink.ts";

/*
 * The query tool includes related rows as the database does: its input
 * takes include (as deep as the database lets includes nest), its needs
 * name the read, the relations it includes and each included read, so the
 * handler's capability lets it include exactly those, and every link of the
 * caller's chain still decides each include. On both engines.
 */

const N = "Note";
const P = "Project";
const TENANT = { principal: "tenant" } as const;
const NOTES: DbRule = { model: N, ops: ["read"], scope: { tenant: TENANT }, fields: ["id", "title", "status", "projectId"], include: { project: { fields: ["id", "name"] } }, maxIncludeDepth: 2 };
const PROJECTS: DbRule = { model: P, ops: ["read"], scope: { tenant: TENANT }, fieldActions: { budget: "redact" }, include: { notes: { fields: ["id", "title", "status"] } } };
const POLICY: Grant = { tools: ["db_query"], db: [NOTES, PROJECTS] };
const aliceWith = (policy: Grant = POLICY) => createMint({ issuer: "tool-includes", clock: createManualClock(0), policy: () => policy }).issue({ id: "alice", tenants: ["t1"] });

/** The property of a JSON schema under `path` (properties only). */
function at(schema: unknown, ...path: string[]): Record<string, unknown> | undefined {
  let node = schema as Record<string, unknown> | undefined;
  for (const key of path) node = (node?.properties as Record<string, Record<string, unknown>> | undefined)?.[key];
  return node;
}

describe.each(NOTES_ENGINES)("the query tool's include on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "included rows through the tool, each include decided by every link", () => {
    let h: NotesHarness;
    beforeAll(async () => {
      h = await engine.open();
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(async () => {
      await h.reset();
    });
    const setup = (limits: { maxIncludeDepth?: number } = {}) => {
      const db = createSqlDatabase({ schema: NOTES_RELATED_SCHEMA, ...h.connection, limits });
      const tools = databaseTools(db, NOTES_RELATED_SCHEMA);
      const sink = memorySink();
      return { tools, sink, dispatcher: createDispatcher({ tools: [tools.query], audit: sink }) };
    };

    it("returns each row with its related rows, confined by the related model's grant", async () => {
      const { dispatcher } = setup();
      const alice = aliceWith();
      const notes = await dispatcher.call("db_query", { model: N, fields: ["id", "title"], where: { status: "published" }, orderBy: [{ field: "id" }], include: { project: { fields: ["id", "name"] } } }, alice);
      expect(notes).toEqual([
        { id: 3, title: "bob's post", project: { id: 2, name: "Borealis" } },
        { id: 4, title: "alice's post", project: { id: 2, name: "Borealis" } },
      ]);
      const projects = await dispatcher.call("db_query", { model: P, fields: ["id", "budget"], orderBy: [{ field: "id" }], include: { notes: { fields: ["title"], where: { status: "published" } } } }, alice);
      // The included notes' foreign key was read only to relate them; a project's budget is shown as its grant shows it.
      expect(projects).toEqual([
        { id: 1, budget: "[redacted]", notes: [] },
        { id: 2, budget: "[redacted]", notes: [{ title: "bob's post" }, { title: "alice's post" }] },
      ]);
    });

    it("nests includes as deep as the grants and the database allow", async () => {
      const { dispatcher } = setup();
      const rows = await dispatcher.call("db_query", { model: N, fields: ["id"], where: { id: 3 }, include: { project: { fields: ["id"], include: { notes: { fields: ["id"], orderBy: [{ field: "id" }] } } } } }, aliceWith());
      expect(rows).toEqual([{ id: 3, project: { id: 2, notes: [{ id: 3 }, { id: 4 }] } }]);
      // The database lets includes nest one level: the tool's input does not offer a second.
      const shallow = setup({ maxIncludeDepth: 1 });
      const deep = await shallow.dispatcher.call("db_query", { model: N, fields: ["id"], include: { project: { fields: ["id"], include: { notes: { fields: ["id"] } } } } }, aliceWith()).catch((e: unknown) => e);
      expect(deep).toBeInstanceOf(InvalidInput);
      expect((deep as Error).message).toMatch(/include\.project/);
    });

    it("needs the read with the relations it includes, and each included read, so the handler may include exactly those", async () => {
      const { dispatcher } = setup();
      const plan = await dispatcher.plan("db_query", { model: N, fields: ["id"], where: { id: 3 }, include: { project: { fields: ["name"] } } }, aliceWith());
      expect(plan.needs).toEqual([
        { action: "db.read", model: N, fields: ["id", "projectId"], scope: { tenant: "t1", id: 3 }, include: { project: { fields: ["name"] } }, tenant: "t1" },
        { action: "db.read", model: P, fields: ["name", "id"], scope: { tenant: "t1" }, tenant: "t1" },
      ]);
      expect(plan.grant.db).toEqual([
        { model: N, ops: ["read"], fields: ["id", "projectId"], scope: { tenant: "t1", id: 3 }, include: { project: { fields: ["name"] } }, maxIncludeDepth: 1 },
        { model: P, ops: ["read"], fields: ["name", "id"], scope: { tenant: "t1" } },
      ]);
    });

    it("refuses an include a link of the caller's chain does not allow, before any SQL", async () => {
      const { dispatcher } = setup();
      const alice = aliceWith();
      const cases: [Grant | null, Record<string, unknown>, RegExp][] = [
        // A field the grant's include does not list.
        [null, { model: N, fields: ["id"], include: { project: { fields: ["id", "budget"] } } }, /naming only the fields id, name of Project, and this include names budget/],
        // A narrowing that takes the relation away.
        [{ tools: ["db_query"], db: [{ ...NOTES, include: {} }, PROJECTS] }, { model: N, fields: ["id"], include: { project: { fields: ["id"] } } }, /link 1 does not let a read of Note include project/],
        // A narrowing that lets includes nest one level only.
        [{ tools: ["db_query"], db: [{ ...NOTES, maxIncludeDepth: 1 }, PROJECTS] }, { model: N, fields: ["id"], include: { project: { fields: ["id"], include: { notes: { fields: ["id"] } } } } }, /nest at most 1 level/],
        // The included model not granted at all.
        [{ tools: ["db_query"], db: [NOTES] }, { model: N, fields: ["id"], include: { project: { fields: ["id"] } } }, /does not grant read on model Project|grants no|Project/],
      ];
      for (const [narrower, input, message] of cases) {
        const cap = narrower === null ? alice : narrow(alice, narrower);
        h.clearCounts();
        const refused = await dispatcher.call("db_query", input, cap).catch((e: unknown) => e);
        expect(refused, JSON.stringify(input)).toBeInstanceOf(CapabilityDenied);
        expect((refused as Error).message).toMatch(message);
        expect(h.executed()).toBe(0);
      }
    });

    it("refuses an unknown relation or field of an include as bad input, before any SQL", async () => {
      const { dispatcher } = setup();
      h.clearCounts();
      await expect(dispatcher.call("db_query", { model: N, fields: ["id"], include: { author: { fields: ["id"] } } }, aliceWith())).rejects.toThrow(/include: Note has no relation "author"/);
      await expect(dispatcher.call("db_query", { model: N, fields: ["id"], include: { project: { fields: ["nmae"] } } }, aliceWith())).rejects.toThrow(InvalidInput);
      await expect(dispatcher.call("db_query", { model: N, fields: ["id"], include: { project: {} } }, aliceWith())).rejects.toThrow(InvalidInput);
      expect(h.executed()).toBe(0);
    });
  });
});

describe("the query tool's input schema", () => {
  const db = { limits: { maxIncludeDepth: 2 } } as unknown as Parameters<typeof databaseTools>[0];

  it("offers include nested as deep as the database allows, in every SDK format", () => {
    const query = databaseTools(db, NOTES_RELATED_SCHEMA).query;
    const include = at(query.inputSchema, "include");
    expect(include?.type).toBe("object");
    const level = include?.additionalProperties as Record<string, unknown>;
    expect(at(level, "fields")?.type).toBe("array");
    expect(at(level, "include")).toBeDefined();
    expect(at(at(level, "include")?.additionalProperties, "include")).toBeUndefined();
    expect(query.description).toMatch(/Note \(.*; relations: project → Project\)/);
    const entry = [{ name: query.name, description: query.description, inputSchema: query.inputSchema }];
    for (const schema of [openAiTools(entry)[0]?.function.parameters, anthropicTools(entry)[0]?.input_schema, vercelAiTools(entry)[query.name]?.inputSchema, langChainTools(entry)[0]?.schema]) {
      expect(at(schema, "include")).toEqual(include);
    }
  });

  it("offers no include where no model relates to another", () => {
    expect(at(databaseTools(db, NOTES_SCHEMA).query.inputSchema, "include")).toBeUndefined();
  });
});
