import { describe, expect, it } from "vitest";
import { encodeEvent } from "../../src/audit/encoding.ts";
import { AuditFailure } from "../../src/kernel/errors.ts";
import { compileRedaction, type RedactionPolicy } from "../../src/audit/redaction.ts";
import type { AuditEvent } from "../../src/kernel/audit-sink.ts";
import { InvalidInput, narrow } from "../../src/index.ts";
import { eventFor, world } from "./fixtures.ts";

const w = world();
const good = eventFor(w.searchTool, { action: "tool.call", tool: "search" });
const stored = (event: AuditEvent, policy?: RedactionPolicy) => JSON.parse(encodeEvent(event, compileRedaction(policy)).body) as AuditEvent;
const request = (event: AuditEvent, policy?: RedactionPolicy) => stored(event, policy).request;

describe("encoding an event", () => {
  it("is canonical: the same event in any key order encodes to the same bytes", () => {
    const reordered = Object.fromEntries(Object.entries(good).reverse()) as unknown as AuditEvent;
    const redact = compileRedaction();
    expect(encodeEvent(reordered, redact)).toEqual(encodeEvent(good, redact));
  });

  it("stores the lineage as link ids, each link encoded once on its own", () => {
    const encoded = encodeEvent(good, compileRedaction());
    expect(stored(good).subject.lineage).toEqual(good.subject.lineage.map((l) => l.id));
    expect(encoded.links.map((l) => JSON.parse(l.text) as unknown)).toEqual(JSON.parse(JSON.stringify(good.subject.lineage)));
  });

  it("keeps how a module tool's code ran (sandboxed or trusted) in the hashed body, and leaves it out for in-process tools", () => {
    expect(stored({ ...good, toolCode: "trusted" }).toolCode).toBe("trusted");
    expect(stored({ ...good, toolCode: "sandboxed" }).toolCode).toBe("sandboxed");
    expect(Object.hasOwn(stored(good), "toolCode")).toBe(false);
    const redact = compileRedaction();
    expect(encodeEvent({ ...good, toolCode: "trusted" }, redact).body).not.toBe(encodeEvent({ ...good, toolCode: "sandboxed" }, redact).body);
  });

  it("encodes a snapshot, so a getter cannot show the log one thing and the check another", () => {
    let reads = 0;
    const sneaky = { ...good };
    Object.defineProperty(sneaky, "tool", { enumerable: true, get: () => (++reads === 1 ? "search" : "deploy") });
    expect(stored(sneaky).tool).toBe("search");
  });

  it.each<[string, (e: AuditEvent) => unknown, RegExp]>([
    ["an event that is not an object", () => "event", /audit event/],
    ["a missing id", (e) => Object.fromEntries(Object.entries(e).filter(([k]) => k !== "id")), /id/],
    ["a time that is not a whole number of milliseconds", (e) => ({ ...e, at: 1.5 }), /at/],
    ["a negative duration", (e) => ({ ...e, durationMs: -1 }), /durationMs/],
    ["an unknown kind", (e) => ({ ...e, kind: "agent" }), /kind/],
    ["a tool output (never logged)", (e) => ({ ...e, output: "the customer's data" }), /Unrecognized key.*output/],
    ["a result carrying content", (e) => ({ ...e, outcome: { ok: true, resultBytes: 3, result: "abc" } }), /outcome/],
    ["a function value", (e) => ({ ...e, tool: () => "search" }), /tool must be plain data/],
    ["a malformed capability hash", (e) => ({ ...e, subject: { ...e.subject, capabilityHash: "xyz" } }), /capabilityHash/],
    ["an empty lineage", (e) => ({ ...e, subject: { ...e.subject, lineage: [] } }), /lineage/],
    ["a lineage that does not end with the capability", (e) => ({ ...e, subject: { ...e.subject, lineage: e.subject.lineage.slice(0, -1) } }), /must end with the capability itself/],
    ["a lineage repeating a link", (e) => ({ ...e, subject: { ...e.subject, lineage: [e.subject.lineage.at(-1), ...e.subject.lineage] } }), /repeats a link id/],
    ["a decision about another capability", (e) => ({ ...e, decision: { allowed: true, capabilityId: "other" } }), /different capability/],
    ["a request that is not canonical", (e) => ({ ...e, request: { action: "fs.read", path: "/srv/../etc/passwd" } }), /request.*path/],
    ["a request with an unknown action", (e) => ({ ...e, request: { action: "fs.chmod", path: "/x" } }), /action/],
    ["an unknown way of running tool code", (e) => ({ ...e, toolCode: "unconfined" }), /toolCode/],
  ])("refuses %s with InvalidInput", (_name, mutate, message) => {
    const run = () => encodeEvent(mutate(good) as AuditEvent, compileRedaction());
    expect(run).toThrow(InvalidInput);
    expect(run).toThrow(message);
  });
});

describe("redaction", () => {
  const http = (url: string) => eventFor(w.searchTool, { action: "http.request", method: "GET", url });
  const db = (scope: Record<string, string | number>) => eventFor(w.report, { action: "db.read", model: "Customer", fields: ["name"], scope });
  const exec = (argv: string[], env?: string[]) => eventFor(w.report, { action: "exec", argv, cwd: "/tmp", ...(env ? { env } : {}) });

  it.each<[string, AuditEvent, RedactionPolicy | undefined, Record<string, unknown>]>([
    ["query values by default, names kept", http("https://api.example.com/v1/q?name=alice&key=k3y&flag"), undefined, { url: "https://api.example.com/v1/q?name=[redacted]&key=[redacted]&[redacted]" }],
    ["the whole query with drop", http("https://api.example.com/v1/q?key=k3y"), { httpQuery: "drop" }, { url: "https://api.example.com/v1/q" }],
    ["nothing with keep", http("https://api.example.com/v1/q?key=k3y"), { httpQuery: "keep" }, { url: "https://api.example.com/v1/q?key=k3y" }],
    ["row-scope values by default, columns kept", db({ email: "carol@example.com", id: 7 }), undefined, { scope: { email: "[redacted]", id: "[redacted]" } }],
    ["no row-scope values with keep", db({ id: 7 }), { dbScope: "keep" }, { scope: { id: 7 } }],
    [
      "secret-looking flags, headers, assignments and URL queries by default",
      exec(["/usr/bin/curl", "--token=t0k", "--password", "pw123", "-H", "X-Api-Key: abc", "API_KEY=zzz", "--verbose", "https://h.test/p?q=1", "plain"]),
      undefined,
      { argv: ["/usr/bin/curl", "--token=[redacted]", "--password", "[redacted]", "-H", "X-Api-Key: [redacted]", "API_KEY=[redacted]", "--verbose", "https://h.test/p?q=[redacted]", "plain"] },
    ],
    ["every argument with all", exec(["/usr/bin/curl", "-s", "https://h.test/"]), { execArgs: "all" }, { argv: ["/usr/bin/curl", "[redacted]", "[redacted]"] }],
    ["no argument with keep", exec(["/usr/bin/curl", "--token=t0k"]), { execArgs: "keep" }, { argv: ["/usr/bin/curl", "--token=t0k"] }],
    ["environment variable names kept by default", exec(["/usr/bin/curl"], ["HOME"]), undefined, { env: ["HOME"] }],
  ])("redacts %s", (_name, event, policy, expected) => {
    expect(request(event, policy)).toMatchObject(expected);
  });

  it("drops environment variable names with execEnv: drop", () => {
    expect(request(exec(["/usr/bin/curl"], ["HOME"]), { execEnv: "drop" })).not.toHaveProperty("env");
  });

  it("takes redacted values out of the denial reason and the error message too", () => {
    const onlySilent = narrow(w.report, { exec: [{ program: "/usr/bin/curl", args: ["-s"] }] });
    const denied = eventFor(onlySilent, { action: "exec", argv: ["/usr/bin/curl", "--token=sup3rs3cret"], cwd: "/tmp" });
    expect(denied.decision.allowed).toBe(false);
    expect(JSON.stringify(denied)).toContain("sup3rs3cret");
    const body = encodeEvent(denied, compileRedaction()).body;
    expect(body).not.toContain("sup3rs3cret");
    expect(stored(denied).decision).toMatchObject({ reason: expect.stringContaining("--token=[redacted]") as unknown });
    const failed = { ...good, outcome: { ok: false, errorCode: "ERR_HTTP", message: "GET https://h.test/x?sig=abcdef failed" } } as const;
    expect(stored(failed).outcome).toEqual({ ok: false, errorCode: "ERR_HTTP", message: "GET https://h.test/x?[redacted] failed" });
  });

  it("applies a custom step after the defaults", () => {
    const policy: RedactionPolicy = { custom: (r) => (r.action === "fs.read" ? { ...r, path: "/hidden" } : r) };
    expect(request(eventFor(w.session.capability, { action: "fs.read", path: "/srv/data/secret.txt" }), policy)).toEqual({ action: "fs.read", path: "/hidden" });
  });

  it("refuses a custom step that changes the action, and wraps one that throws in AuditFailure", () => {
    const event = eventFor(w.session.capability, { action: "fs.read", path: "/srv/data/a" });
    expect(() => request(event, { custom: () => ({ action: "tool.call", tool: "x" }) })).toThrow(InvalidInput);
    expect(() =>
      request(event, {
        custom: () => {
          throw new Error("boom");
        },
      }),
    ).toThrow(AuditFailure);
  });

  it.each([[{ httpQuery: "hide" }], [{ dbScope: "drop" }], [{ execArgs: "none" }], [{ execEnv: "values" }], [{ custom: "no" }], [{ headers: true }]])(
    "refuses a bad policy %j with InvalidInput",
    (policy) => {
      expect(() => compileRedaction(policy as RedactionPolicy)).toThrow(InvalidInput);
    },
  );
});
