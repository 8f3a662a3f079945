import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/audit/index.ts";
import { HOUR, T0 } from "../audit/fixtures.ts";
import { explorerWorld, fakePage, type ExplorerWorld } from "./world.ts";

/*
 * The explorer over a log pruned by retention: the integrity view verifies
 * it and says which entries were pruned; the timeline shows what remains.
 */

let world: ExplorerWorld;
let page: ReturnType<typeof fakePage>;

beforeAll(async () => {
  page = fakePage();
  world = await explorerWorld({ pageDir: page.dir });
});

afterAll(async () => {
  await world.close();
  page.remove();
});

const api = (path: string) => fetch(`${world.origin}/explore/api/${path}`, { headers: { authorization: `Bearer ${world.token("admin")}` } });

describe("explorer API on a pruned log", () => {
  it("integrity verifies the log and names the pruned range; the timeline lists what remains", async () => {
    // The scenario's entries that began before T0: the first one, a day earlier.
    const report = await world.audit.prune({ before: T0 });
    expect(report).toMatchObject({ pruned: 1, upTo: 1 });
    const integrity = await api("integrity");
    expect(integrity.status).toBe(200);
    expect(await integrity.json()).toMatchObject({ ok: true, events: world.named.length - 1, pruned: { upTo: 1, before: T0, signed: true }, problems: [] });

    expect((await world.audit.prune({ before: T0 + 2 * HOUR })).upTo).toBeGreaterThan(1);
    const timeline = await api("events?limit=100");
    expect(timeline.status).toBe(200);
    const seqs = ((await timeline.json()) as { events: AuditRecord[] }).events.map((e) => e.seq);
    expect(Math.min(...seqs)).toBeGreaterThan(1);
    expect(await (await api("integrity")).json()).toMatchObject({ ok: true, pruned: { before: T0 + 2 * HOUR } });
  });
});
