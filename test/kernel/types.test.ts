import { describe, expect, expectTypeOf, it } from "vitest";
import {
  check,
  createManualClock,
  createMint,
  forSeconds,
  narrow,
  narrowToRow,
  readOnly,
  restrict,
  revocable,
  singleUse,
  type Capability,
  type FullReach,
  type Grant,
} from "../../src/index.ts";

/*
 * Typed capabilities: a capability's type says which domains and operations
 * it can reach, narrowing refines it, and functions ask for the reach they
 * need. `tsc --noEmit` (part of the test command) checks every
 * `@ts-expect-error` below: if one of those lines ever compiles, the type
 * check fails. The same lines also run here, where the runtime check refuses
 * what the types would have refused.
 */

/** Stand-ins for resource methods: each asks for the reach it needs and decides at run time too. */
function readFile(cap: Capability<{ fs: "read" }>, path: string): boolean {
  return check(cap, { action: "fs.read", path }).allowed;
}
function writeFile(cap: Capability<{ fs: "write" }>, path: string): boolean {
  return check(cap, { action: "fs.write", path }).allowed;
}
function httpGet(cap: Capability<{ http: "GET" }>, url: string): boolean {
  return check(cap, { action: "http.request", method: "GET", url }).allowed;
}
function readAndFetch(cap: Capability<{ fs: "read"; http: "GET" }>): boolean {
  return readFile(cap, "/data/a") && httpGet(cap, "https://api.example.com/");
}
function readRow(cap: Capability<{ db: "read" }>): boolean {
  return check(cap, { action: "db.read", model: "User", fields: ["name"], scope: { id: 7 } }).allowed;
}
/** Accepts any capability and promises nothing about its reach. */
function anyCapability(cap: Capability): string {
  return cap.id;
}

function root(): Capability<FullReach> {
  return createMint({
    issuer: "types",
    clock: createManualClock(0),
    policy: () => ({
      fs: [{ path: "/data", ops: ["read", "write"] }],
      http: [{ origin: "https://api.example.com", methods: ["GET", "POST"] }],
      db: [{ model: "User", ops: ["read", "update"] }],
    }),
  }).issue({ id: "alice" });
}

describe("typed capabilities", () => {
  it("a root from a mint reaches everything at the type level; the runtime check decides", () => {
    const cap = root();
    expect(readFile(cap, "/data/a")).toBe(true);
    expect(writeFile(cap, "/data/a")).toBe(true);
    expect(httpGet(cap, "https://api.example.com/")).toBe(true);
    expect(readFile(cap, "/etc/passwd")).toBe(false);
    expect(anyCapability(cap)).toBe(cap.id);
  });

  it("a read-only file capability does not compile where write or HTTP is required", () => {
    const reader = narrow(root(), { fs: [{ path: "/data", ops: ["read"] }] });
    expect(readFile(reader, "/data/a")).toBe(true);
    // @ts-expect-error a read-only file capability must not be accepted where file write is required
    expect(writeFile(reader, "/data/a")).toBe(false);
    // @ts-expect-error a file capability must not be accepted where HTTP GET is required
    expect(httpGet(reader, "https://api.example.com/")).toBe(false);
    // @ts-expect-error a file capability reaches no database rows
    expect(readRow(reader)).toBe(false);
    // @ts-expect-error reading files alone does not cover reading files and fetching
    expect(readAndFetch(reader)).toBe(false);
    expect(anyCapability(reader)).toBe(reader.id);
  });

  it("narrowing refines the type, domain by domain and operation by operation", () => {
    const both = narrow(root(), {
      fs: [{ path: "/data", ops: ["read", "write"] }],
      http: [{ origin: "https://api.example.com", methods: ["GET"] }],
    });
    expect(readAndFetch(both)).toBe(true);
    expect(writeFile(both, "/data/a")).toBe(true);

    const readerOnly = narrow(both, { fs: [{ path: "/data/a", ops: ["read"] }] });
    expect(readFile(readerOnly, "/data/a")).toBe(true);
    // @ts-expect-error the second narrowing dropped HTTP, so the meet has no HTTP reach
    expect(httpGet(readerOnly, "https://api.example.com/")).toBe(false);

    // Narrowing can never add reach the parent lacks: the meet of fs:read and fs:write is nothing.
    const reader = narrow(root(), { fs: [{ path: "/data", ops: ["read"] }] });
    const writerOfReader = narrow(reader, { fs: [{ path: "/data", ops: ["write"] }] });
    // @ts-expect-error write was never in the parent's reach, so the child has none either
    expect(writeFile(writerOfReader, "/data/a")).toBe(false);
    // @ts-expect-error and the child lost read by asking only for write
    expect(readFile(writerOfReader, "/data/a")).toBe(false);
  });

  it("readOnly() removes write reach", () => {
    const rw = narrow(root(), {
      fs: [{ path: "/data", ops: ["read", "write"] }],
      http: [{ origin: "https://api.example.com", methods: ["GET", "POST"] }],
    });
    expect(writeFile(rw, "/data/a")).toBe(true);
    const ro = readOnly(rw);
    expect(readFile(ro, "/data/a")).toBe(true);
    expect(httpGet(ro, "https://api.example.com/")).toBe(true);
    // @ts-expect-error readOnly() leaves no file write reach in the type
    expect(writeFile(ro, "/data/a")).toBe(false);
  });

  it("conditions and forwarders keep the reach; narrowToRow reaches only the database", () => {
    const reader = narrow(root(), { fs: [{ path: "/data", ops: ["read"] }] });
    for (const cap of [restrict(reader, { maxUses: 5 }), revocable(reader).capability, forSeconds(reader, 60), singleUse(reader)]) {
      expect(readFile(cap, "/data/a")).toBe(true);
      // @ts-expect-error conditions and forwarders never add write reach
      expect(writeFile(cap, "/data/a")).toBe(false);
    }
    const row = narrowToRow(root(), { model: "User", id: 7, ops: ["read"] });
    expect(readRow(row)).toBe(true);
    // @ts-expect-error a database row capability has no file reach
    expect(readFile(row, "/data/a")).toBe(false);
  });

  it("a capability narrowed by a runtime-typed Grant is accepted; the runtime check decides", () => {
    // A grant that arrives as data (a config file, another process) has the full Grant type.
    const fromConfig = JSON.parse('{"fs":[{"path":"/data","ops":["read"]}]}') as Grant;
    const cap = narrow(root(), fromConfig);
    expect(readFile(cap, "/data/a")).toBe(true);
    expect(writeFile(cap, "/data/a")).toBe(false);
    expect(httpGet(cap, "https://api.example.com/")).toBe(false);
  });

  it("a capability of unknown reach promises nothing, so it is not accepted where reach is required", () => {
    const unknownReach: Capability = root();
    expect(anyCapability(unknownReach)).toBe(unknownReach.id);
    // @ts-expect-error plain Capability does not promise file read reach
    expect(readFile(unknownReach, "/data/a")).toBe(true);
  });

  it("expectTypeOf: reach is visible in the types", () => {
    const reader = narrow(root(), { fs: [{ path: "/data", ops: ["read"] }] });
    expectTypeOf(root()).toEqualTypeOf<Capability<FullReach>>();
    expectTypeOf(reader).toExtend<Capability<{ fs: "read" }>>();
    expectTypeOf(reader).not.toExtend<Capability<{ fs: "write" }>>();
    expectTypeOf(reader).not.toExtend<Capability<{ http: "GET" }>>();
    expectTypeOf(readOnly(root())).toExtend<Capability<{ fs: "read" | "list"; http: "GET" | "HEAD"; db: "read" }>>();
    expectTypeOf(readOnly(root())).not.toExtend<Capability<{ db: "update" }>>();
    expectTypeOf(narrow(root(), { tools: ["search"] })).toExtend<Capability<{ tools: "call" }>>();
    expectTypeOf(narrow(root(), { tools: ["search"] })).not.toExtend<Capability<{ exec: "run" }>>();
    expectTypeOf(writeFile).parameter(0).toEqualTypeOf<Capability<{ fs: "write" }>>();
    expectTypeOf(reader).toExtend<Capability>();
  });
});
