import { describe, expect, it } from "vitest";
import { DEFAULT_SESSION_LIMITS, type SessionLimits } from "../../src/mcp/config.ts";
import { sessionTable } from "../../src/mcp/session-table.ts";

const limits = (overrides: Partial<SessionLimits>): SessionLimits => ({ ...DEFAULT_SESSION_LIMITS, ...overrides });

function table(overrides: Partial<SessionLimits>) {
  const closed: string[] = [];
  const t = sessionTable<string>(limits(overrides), (id, _value, why) => closed.push(`${id}: ${why}`));
  return { t, closed };
}

describe("sessionTable", () => {
  it("replaces the least recently used idle session of a token at maxPerToken", () => {
    const { t, closed } = table({ maxPerToken: 2 });
    expect(t.open("a", "alice", "T", "a", null)).toBeNull();
    expect(t.open("b", "alice", "T", "b", null)).toBeNull();
    t.begin("a")();
    expect(t.open("c", "alice", "T", "c", null)).toBeNull();
    expect(closed).toEqual(["b: replaced by a new session of the same token (maxPerToken 2)"]);
    expect(t.ids().sort()).toEqual(["a", "c"]);
  });

  it("never replaces a busy session: refuses instead, and forgets nothing", () => {
    const { t, closed } = table({ maxPerToken: 1 });
    t.open("a", "alice", "T", "a", null);
    const done = t.begin("a");
    expect(t.open("b", "alice", "T", "b", null)).toMatchObject({ kind: "token" });
    expect(t.size).toBe(1);
    done();
    expect(t.open("b", "alice", "T", "b", null)).toBeNull();
    expect(closed).toHaveLength(1);
  });

  it("limits a principal across tokens, and the whole table without closing anyone's session", () => {
    const { t, closed } = table({ maxPerPrincipal: 2, max: 3 });
    t.open("a", "alice", "T1", "a", null);
    t.open("b", "alice", "T2", "b", null);
    t.open("c", "alice", "T3", "c", null);
    expect(closed).toEqual(["a: replaced by a new session of the same principal (maxPerPrincipal 2)"]);
    t.open("d", "bob", "T4", "d", null);
    expect(t.open("e", "carol", "T5", "e", null)).toMatchObject({ kind: "total" });
    expect(t.size).toBe(3);
    expect(closed).toHaveLength(1);
  });

  it("closes a session once, however often it is removed", () => {
    const { t, closed } = table({});
    t.open("a", "alice", "T", "a", null);
    t.remove("a", "ended");
    t.remove("a", "again");
    expect(closed).toEqual(["a: ended"]);
    expect(t.get("a")).toBeUndefined();
    // A request that ends after its session was removed changes nothing.
    expect(t.size).toBe(0);
  });

  it("closes a session whose capability has already expired at once", async () => {
    const { t, closed } = table({});
    t.open("a", "alice", "T", "a", 0);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(closed).toEqual(["a: its capability expired"]);
  });
});
