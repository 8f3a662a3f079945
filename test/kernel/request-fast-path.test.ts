import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidInput } from "../../src/index.ts";
import { fastCheckRequest } from "../../src/kernel/request-fast-path.ts";
import { checkRequestBySchema, type CheckedRequest } from "../../src/kernel/request.ts";

/** Values near the edges of what the schemas accept: valid ones, and ones that break one rule. */
const text = fc.oneof(
  fc.constantFrom("", "a", "Customer", "tenantId", "_x", "9lives", "has space", "a\0b", "x".repeat(63), "x".repeat(64), "x".repeat(257)),
  fc.string({ maxLength: 12 }),
);
const path = fc.oneof(
  fc.constantFrom("/", "/srv/data", "/srv/data/", "srv/data", "/srv//data", "/srv/./data", "/srv/../etc", "/a\0b", ""),
  fc.array(fc.constantFrom("a", "b", ".", "..", "", "c d"), { maxLength: 4 }).map((s) => `/${s.join("/")}`),
);
const scalar = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.constant([1]));
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

const request = fc.oneof(
  fc.record({ action: fc.constant("tool.call"), tool: text, tenant: maybe(text) }, { requiredKeys: ["action"] }),
  fc.record({ action: fc.constantFrom("fs.read", "fs.write", "fs.list", "fs.delete", "fs.chmod"), path, tenant: maybe(text) }, { requiredKeys: ["action"] }),
  fc.record(
    {
      action: fc.constantFrom("db.read", "db.create", "db.update", "db.delete"),
      model: text,
      fields: fc.oneof(fc.array(text, { maxLength: 4 }), fc.constant("name"), fc.constant([1])),
      scope: fc.oneof(fc.dictionary(text, scalar, { maxKeys: 3 }), fc.constant([]), fc.constant(null)),
      views: fc.oneof(
        fc.dictionary(text, fc.constantFrom<unknown>("hash", "redact", "allow", "deny", { mask: "{last4}" }, { mask: "{last0}" }, { mask: "a", b: 1 }, {}, null), { maxKeys: 3 }),
        fc.constant(null),
      ),
      limit: maybe(fc.constantFrom<unknown>(1, 0, -1, 1.5, 2 ** 53, "5", null)),
      tenant: maybe(text),
      extra: maybe(fc.constant(1)),
    },
    { requiredKeys: ["action"] },
  ),
  fc.record(
    {
      action: fc.constant("http.request"),
      method: fc.constantFrom("GET", "POST", "get", "TRACE"),
      url: fc.constantFrom("https://api.example.com/v1/x", "http://127.0.0.1:8080/", "ftp://x/", "not a url", "x".repeat(9000)),
      address: maybe(fc.constantFrom("127.0.0.1", "::1", "nope")),
      tenant: maybe(text),
    },
    { requiredKeys: ["action"] },
  ),
  fc.record(
    {
      action: fc.constant("exec"),
      argv: fc.oneof(fc.array(fc.oneof(path, text), { maxLength: 3 }), fc.constant("ls")),
      cwd: path,
      env: maybe(fc.array(fc.constantFrom("HOME", "LD_PRELOAD", "1BAD", "A-B", ""), { maxLength: 3 })),
      tenant: maybe(text),
    },
    { requiredKeys: ["action"] },
  ),
  fc.record({ action: fc.constantFrom("audit.read", "audit.write"), tenant: maybe(text), extra: maybe(fc.constant(1)) }, { requiredKeys: ["action"] }),
);

/**
 * The same requests in the forms a caller could also build: with no
 * prototype, with one field turned into a getter, or into a property that is
 * not enumerable (which the schema reads as an own property and a pass over
 * the keys would not see), with a field only the schema checks (rows,
 * address) hidden that way too.
 */
const exotic = fc.tuple(request, fc.constantFrom("plain", "null-prototype", "getter", "hidden", "hidden-extra"), fc.nat(), fc.constantFrom<[string, unknown]>(["rows", [{ field: "a", op: "eq", value: 1 }]], ["address", "127.0.0.1"], ["tenant", "t1"], ["limit", 1])).map(([r, form, pick, extra]) => {
  const fields = Object.entries(r as Record<string, unknown>);
  const target: Record<string, unknown> = form === "null-prototype" ? (Object.create(null) as Record<string, unknown>) : {};
  const [chosen] = fields[pick % fields.length] ?? ["action"];
  for (const [k, v] of fields) {
    if (k === chosen && form === "getter") Object.defineProperty(target, k, { get: () => v, enumerable: true, configurable: true });
    else if (k === chosen && form === "hidden") Object.defineProperty(target, k, { value: v, enumerable: false, configurable: true });
    else target[k] = v;
  }
  if (form === "hidden-extra" && !Object.hasOwn(target, extra[0])) Object.defineProperty(target, extra[0], { value: extra[1], enumerable: false });
  return target;
});

/** A checked request with its URL as text, which equality compares (a URL object's fields are accessors). */
function comparable(checked: CheckedRequest): unknown {
  return checked.kind === "http" ? { ...checked, url: checked.url.href } : checked;
}

/** What `check` makes of `value`: the checked request, or a refusal (always InvalidInput, with the message the schema path words). */
function verdict(check: (value: unknown) => CheckedRequest | null, value: unknown): unknown {
  try {
    const checked = check(value);
    return checked === null ? null : { ok: comparable(checked) };
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInput);
    return { rejected: (e as Error).message };
  }
}

/** Every value the fast path vouches for gets the schemas' verdict; it refuses nothing itself except a URL the checked form refuses anyway, in the same words. */
function agreesWithSchema(values: fc.Arbitrary<unknown>): void {
  let vouched = 0;
  fc.assert(
    fc.property(values, (value) => {
      const fast = verdict(fastCheckRequest, value);
      if (fast === null) return;
      vouched++;
      expect(verdict(checkRequestBySchema, value)).toEqual(fast);
    }),
    { numRuns: 3000 },
  );
  expect(vouched).toBeGreaterThan(100);
}

describe("request fast path", () => {
  it("accepts only what the schemas accept, with the same result", () => {
    agreesWithSchema(request);
  });

  it("accepts only what the schemas accept, with the same result, for objects with no prototype, getters and properties that are not enumerable", () => {
    agreesWithSchema(exotic);
  });

  it("leaves a request with a field that is not enumerable to the schema, which reads it", () => {
    const request = { action: "db.read", model: "Customer", fields: ["name"], scope: { tenantId: 42 } };
    for (const [key, value] of [["tenant", "t1"], ["limit", 1], ["rows", [{ field: "a", op: "eq", value: 1 }]], ["views", { name: "hash" }]] as const) {
      const hidden = Object.defineProperty({ ...request }, key, { value, enumerable: false });
      expect(fastCheckRequest(hidden)).toBeNull();
    }
    const http = Object.defineProperty({ action: "http.request", method: "GET", url: "https://a.b/" }, "address", { value: "10.0.0.1", enumerable: false });
    expect(fastCheckRequest(http)).toBeNull();
    expect(checkRequestBySchema(http)).toMatchObject({ address: "10.0.0.1" });
  });

  it("copies what it accepts, so later mutation of the caller's arrays changes nothing", () => {
    const fields = ["name"];
    const scope = { tenantId: 42 };
    const checked = fastCheckRequest({ action: "db.read", model: "Customer", fields, scope });
    fields.push("ssn");
    scope.tenantId = 43;
    expect(checked).toMatchObject({ action: "db.read", model: "Customer", fields: ["name"], scope: new Map([["tenantId", 42]]) });
  });

  it("leaves exotic objects to the schema", () => {
    class Req {
      action = "tool.call";
      tool = "x";
    }
    expect(fastCheckRequest(new Req())).toBeNull();
    expect(fastCheckRequest({ action: "http.request", method: "GET", url: "https://a.b/", address: "1.2.3.4" })).toBeNull();
    const sparse: string[] = [];
    sparse[1] = "name";
    expect(fastCheckRequest({ action: "db.read", model: "M", fields: sparse, scope: {} })).toBeNull();
  });
});
