import { describe, expect, it } from "vitest";
import { createManualClock, createMint, narrow, narrowToRow, revocable, type Capability, type Grant } from "../../src/index.ts";
import { confinementOf } from "../../src/resources/sql/scope.ts";

/* The row scope proposed for a query, read from the capability's chain (the kernel then checks every link). */

const root = (grant: Grant) => createMint({ issuer: "scope-tests", clock: createManualClock(0), policy: () => grant }).issue({ id: "p" });

describe("row scope from the capability chain", () => {
  it("unions the scope of every link, remembering which link pins each field", () => {
    const tenant = root({ db: [{ model: "Customer", ops: ["read"], scope: { tenantId: 42 } }] });
    const one = narrowToRow(revocable(tenant).capability, { model: "Customer", id: 7 });
    const { scope } = confinementOf(one, "Customer", "read", []);
    expect(scope.map(({ field, value, link }) => ({ field, value, link }))).toEqual([
      { field: "tenantId", value: 42, link: 0 },
      { field: "id", value: 7, link: 2 },
    ]);
    expect(scope[1]?.linkId).toBe(one.id);
  });

  it("uses, within a link, the first rule that grants the fields asked for", () => {
    const cap = root({
      db: [
        { model: "Customer", ops: ["read"], fields: ["id"], scope: { tenantId: 1 } },
        { model: "Customer", ops: ["read"], fields: ["id", "name"], scope: { tenantId: 2 } },
      ],
    });
    expect(confinementOf(cap, "Customer", "read", ["id"]).scope[0]?.value).toBe(1);
    expect(confinementOf(cap, "Customer", "read", ["name"]).scope[0]?.value).toBe(2);
  });

  it("prefers a rule that agrees with the scope earlier links pinned", () => {
    const cap = narrow(root({ db: [{ model: "Customer", ops: ["read"], scope: { tenantId: 2 } }] }), {
      db: [
        { model: "Customer", ops: ["read"], scope: { tenantId: 1 } },
        { model: "Customer", ops: ["read"], scope: { tenantId: 2, region: "eu" } },
      ],
    });
    expect(confinementOf(cap, "Customer", "read", []).scope.map((e) => [e.field, e.value])).toEqual([
      ["tenantId", 2],
      ["region", "eu"],
    ]);
  });

  it("confines a query to one scope when a link grants the model under several", () => {
    const cap = root({
      db: [
        { model: "Customer", ops: ["read"], scope: { tenantId: 1 } },
        { model: "Customer", ops: ["read"], scope: { tenantId: 2 } },
      ],
    });
    expect(confinementOf(cap, "Customer", "read", []).scope.map((e) => e.value)).toEqual([1]);
  });

  it("chooses, among a link's rules, one that agrees with the query's own equality filters and the other links", () => {
    const two = root({
      db: [
        { model: "Customer", ops: ["read"], scope: { tenantId: 1 } },
        { model: "Customer", ops: ["read"], scope: { tenantId: 2 }, rows: { field: "vip", op: "eq", value: true } },
      ],
    });
    const tenant = (cap: Capability, pins: [string, string | number | boolean][]) => confinementOf(cap, "Customer", "read", [], new Map(pins)).scope.map((e) => e.value);
    expect(tenant(two, [["tenantId", 2]])).toEqual([2]);
    expect(confinementOf(two, "Customer", "read", [], new Map([["tenantId", 2]])).rows.map((e) => e.rule)).toEqual([{ field: "vip", op: "eq", value: true }]);
    // A filter that rules out a rule's rows rules out the rule; none fits, so the first is proposed for the kernel to deny.
    expect(tenant(two, [["tenantId", 2], ["vip", false]])).toEqual([1]);
    // A later link keeping only the second rule makes the first link's choice the second too.
    expect(tenant(narrow(two, { db: [{ model: "Customer", ops: ["read"], scope: { tenantId: 2 } }] }), [])).toEqual([2]);
  });

  it("reaches only the fields every link's rule grants", () => {
    const cap = narrow(root({ db: [{ model: "Customer", ops: ["read"], fields: ["id", "name", "email"] }] }), {
      db: [{ model: "Customer", ops: ["read"], fields: ["id", "email", "phone"] }],
    });
    expect([...(confinementOf(cap, "Customer", "read", []).reachable ?? [])]).toEqual(["id", "email"]);
    expect(confinementOf(root({ db: [{ model: "Customer", ops: ["read"] }] }), "Customer", "read", []).reachable).toBeNull();
  });

  it("proposes nothing for links that do not grant the model or operation, leaving the denial to the kernel", () => {
    const cap = root({ db: [{ model: "Order", ops: ["read"], scope: { tenantId: 42 } }] });
    expect(confinementOf(cap, "Customer", "read", [])).toEqual({ scope: [], reachable: null, actions: new Map(), rows: [], maxRows: null, rowBudgets: [], immutable: new Map(), required: new Map(), requireFilter: null, requireReason: null, autoSet: new Map(), includes: [] });
    expect(confinementOf(cap, "Order", "delete", [])).toEqual({ scope: [], reachable: null, actions: new Map(), rows: [], maxRows: null, rowBudgets: [], immutable: new Map(), required: new Map(), requireFilter: null, requireReason: null, autoSet: new Map(), includes: [] });
  });
});
