import { afterEach, beforeEach, expect, it } from "vitest";
import { staleIndexes } from "../../src/audit/schema.ts";
import { eachKit, intentOf, scenario, type StoreKit } from "./fixtures.ts";

/*
 * The filter indexes leave outcomes out (see INDEXES). A log whose indexes an
 * earlier version made over every entry gets them made again when it is
 * opened for writing, and answers its queries as before.
 */
eachKit("audit log made with earlier indexes", ({ name, make }) => {
  let kit: StoreKit;
  beforeEach(() => {
    kit = make();
  });
  afterEach(async () => {
    await kit.cleanup();
  });

  /** The condition of each filter index, as the engine prints it. */
  const conditions = async (): Promise<Map<string, string | null>> => {
    const rows =
      name === "sqlite"
        ? await kit.raw("SELECT name, sql AS def FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' AND sql IS NOT NULL")
        : await kit.raw("SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'audit_events'");
    return new Map(rows.map((r) => [String(r.name), /\bWHERE\b(.*)$/is.exec(String(r.def))?.[1]?.trim() ?? null]));
  };

  it("a new log's filter indexes leave outcomes out; at, id and the denied indexes do not", async () => {
    const store = await kit.open();
    await store.close();
    const found = await conditions();
    expect(found.get("audit_events_principal")).toMatch(/^\(?phase <> 2\)?$/);
    expect(found.get("audit_events_session_id")).toMatch(/^\(?phase <> 2\)?$/);
    expect(found.get("audit_events_at")).toBeNull();
    expect(found.get("audit_events_id")).toBeNull();
    expect(found.get("audit_events_denied_seq")).toMatch(/^\(?allowed = 0\)?$/);
  });

  it("an index over every entry is made again as this version's when the log is opened, and queries find the same events", async () => {
    const { named } = scenario();
    let store = await kit.open();
    for (const [, event] of named) await store.write(event);
    // An allowed call: an intent and its outcome.
    const [, call] = named[0] ?? [];
    if (call === undefined) throw new Error("the scenario has no events");
    const acted = { ...call, id: "acted-1" };
    await store.intend(intentOf(acted));
    await store.complete({ id: "acted-1", outcome: { ok: true, resultBytes: 3 }, durationMs: 1 });
    const before = (await store.query({ principal: "alice", limit: 1000 })).map((r) => r.event.id);
    await store.close();

    // As an earlier version made it: every entry, outcomes too.
    await kit.raw("DROP INDEX audit_events_principal");
    await kit.raw("CREATE INDEX audit_events_principal ON audit_events (principal, seq)");
    expect((await conditions()).get("audit_events_principal")).toBeNull();

    store = await kit.open({ again: true });
    expect((await conditions()).get("audit_events_principal")).toMatch(/^\(?phase <> 2\)?$/);
    expect((await store.query({ principal: "alice", limit: 1000 })).map((r) => r.event.id)).toEqual(before);
    expect(before).toContain("acted-1");
    await store.close();
  });
});

it("staleIndexes names an index whose condition differs, ignoring how the engine spaces and brackets it, and not one the log lacks", () => {
  expect(staleIndexes([{ name: "audit_events_principal", where: null }])).toEqual(["audit_events_principal"]);
  expect(staleIndexes([{ name: "audit_events_principal", where: "(phase <> 2)" }])).toEqual([]);
  expect(staleIndexes([{ name: "audit_events_at", where: "phase <> 2" }])).toEqual(["audit_events_at"]);
  expect(staleIndexes([{ name: "audit_events_denied_seq", where: " (allowed = 0)" }])).toEqual([]);
  expect(staleIndexes([{ name: "some_other_index", where: null }])).toEqual([]);
});
