import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapabilityDenied, InvalidInput, narrow } from "../../src/index.ts";
import { absolutePathProblem, isWithin } from "../../src/kernel/canonical-forms.ts";
import { identityAnchor } from "../../src/resources/fs/anchor.ts";
import { FileSystemError } from "../../src/index.ts";
import { lexicalPath, realEntryPath, realPath } from "../../src/resources/fs/paths.ts";
import { makeFixture, SECRET_CONTENTS, snapshot, type Fixture } from "./fs-fixture.ts";

const SEGMENTS = [
  "..", ".", "", "granted", "sub", "a.txt", "out-link", "secret-link", "rel-link", "up", "private", "p.txt",
  "loop-a", "dangling-out", "dangling-dir", "dangling-in", "outside", "secret.txt", "d", "e", "f.txt",
  "granted-evil", "x.txt", "single.txt", "ro", "r.txt", "new",
];

/** Paths built from the fixture's names, `..`, `.` and empty segments: relative, or absolute from T. */
const fixturePath = (root: string) =>
  fc.tuple(fc.boolean(), fc.array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 10 }), fc.boolean()).map(
    ([absolute, segments, trailing]) => `${absolute ? `${root}/base/` : ""}${segments.join("/")}${trailing ? "/" : ""}`,
  ).filter((p) => p !== "");

/**
 * Paths that mostly exist: a walk from `base` that at each step takes one of
 * the real entries of where it stands (links included), `..` or `.`, chosen
 * by the generated numbers, with doubled or trailing separators now and then.
 */
const existingPath = (base: string) =>
  fc.tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), fc.boolean(), fc.boolean()).map(([choices, doubled, trailing]) => {
    let at = base;
    const names: string[] = [];
    for (const choice of choices) {
      let entries: string[];
      try {
        entries = fs.statSync(at).isDirectory() ? fs.readdirSync(at).sort() : [];
      } catch {
        entries = [];
      }
      const options = [...entries, "..", "."];
      const name = options[choice % options.length] ?? ".";
      names.push(name);
      at = path.join(at, name);
    }
    return `${names.join(doubled ? "//" : "/")}${trailing ? "/" : ""}`;
  });

let f: Fixture;
beforeAll(() => {
  f = makeFixture();
});
afterAll(() => {
  f.cleanup();
});

describe("lexicalPath", () => {
  it.each([
    ["a/b/../c", "/base/a/c"],
    ["./a//b/", "/base/a/b"],
    ["../../../../x", "/x"],
    ["/abs//p/./q/..", "/abs/p"],
    ["a\\..\\b", "/base/a\\..\\b"],
  ])("%s becomes %s", (input, expected) => {
    expect(lexicalPath(input, "/base")).toBe(expected);
  });

  it.each([
    ["a non-string", 1, /must be a string, got number/],
    ["null", null, /must be a string, got null/],
    ["an empty string", "", /is empty/],
    ["a NUL byte", "a\0b", /NUL byte/],
    ["an over-long path", "x".repeat(5000), /longer than 4096/],
  ])("refuses %s with InvalidInput", (_name, input, message) => {
    expect(() => lexicalPath(input, "/base")).toThrow(InvalidInput);
    expect(() => lexicalPath(input, "/base")).toThrow(message);
  });

  it("turns any string into a canonical absolute path, or refuses it with InvalidInput", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (input) => {
        let result: string;
        try {
          result = lexicalPath(input, "/base");
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidInput);
          return;
        }
        expect(absolutePathProblem(result)).toBeUndefined();
      }),
    );
  });
});

describe("realPath and realEntryPath", () => {
  it("resolve links in parents, dangling links, and leave missing tails as written", () => {
    expect(realPath(f.at("base/granted/out-link/secret.txt"))).toBe(f.at("outside/secret.txt"));
    expect(realPath(f.at("base/granted/dangling-out"))).toBe(f.at("outside/new.txt"));
    expect(realPath(f.at("base/granted/dangling-dir/x/y"))).toBe(f.at("outside/nodir/x/y"));
    expect(realPath(f.at("base/granted/missing/deeper"))).toBe(f.at("base/granted/missing/deeper"));
    expect(realPath(f.at("base/granted/a.txt/below"))).toBe(f.at("base/granted/a.txt/below"));
    expect(realPath("/")).toBe("/");
  });

  it("stop following a loop after 40 hops instead of throwing", () => {
    expect(realPath(f.at("base/granted/loop-a"))).toMatch(/loop-[ab]$/);
  });

  it("realEntryPath keeps the last name as written", () => {
    expect(realEntryPath(f.at("base/granted/secret-link"))).toBe(f.at("base/granted/secret-link"));
    expect(realEntryPath(f.at("base/granted/up/private"))).toBe(f.at("base/private"));
    expect(realEntryPath("/")).toBe("/");
  });

  it("always produce a canonical absolute path, never an error", () => {
    fc.assert(
      fc.property(fixturePath(f.root), (input) => {
        const lexical = lexicalPath(input, f.base);
        expect(absolutePathProblem(realPath(lexical))).toBeUndefined();
        expect(absolutePathProblem(realEntryPath(lexical))).toBeUndefined();
      }),
    );
  });

  it("agree with the operating system wherever the path exists", () => {
    let compared = 0;
    fc.assert(
      fc.property(existingPath(f.base), (input) => {
        const lexical = lexicalPath(input, f.base);
        let real: string;
        try {
          real = fs.realpathSync.native(lexical);
        } catch {
          return;
        }
        compared += 1;
        expect(realPath(lexical)).toBe(real);
      }),
      { numRuns: 100 },
    );
    // The walk follows real entries, so nearly every generated path exists (only dangling links and loops do not).
    expect(compared).toBeGreaterThanOrEqual(60);
  });
});

describe("random paths never escape the granted subtree", () => {
  /** Names that lead out (links, .., siblings), whole routes out through links, and a few names that stay in. */
  const ESCAPES = [
    "..", "..", ".", "", "out-link", "secret-link", "rel-link", "up", "private", "p.txt", "secret.txt",
    "e", "f.txt", "d", "sub", "a.txt", "dangling-out", "dangling-dir", "loop-a", "new",
    "out-link/secret.txt", "out-link/e/f.txt", "up/private/p.txt", "dangling-dir/x", "up/granted-evil/x.txt",
  ];
  const escapePath = (root: string) =>
    fc
      .tuple(
        fc.constantFrom("granted/", "granted/", "", `${root}/base/granted/`),
        fc.array(fc.constantFrom(...ESCAPES), { minLength: 1, maxLength: 6 }),
      )
      .map(([prefix, segments]) => `${prefix}${segments.join("/")}`)
      .filter((p) => p !== "");

  it.each([["the platform's anchor"], ["the identity anchor"]])("with %s", async (label) => {
    const g = makeFixture(label === "the identity anchor" ? identityAnchor : undefined);
    try {
      // Only T/base/granted is reachable, and only below it may anything change.
      const cap = narrow(g.cap, { fs: [{ path: g.granted, ops: ["read", "write", "list", "delete"] }] });
      const notGranted = () => Object.entries(snapshot(g.root)).filter(([p]) => !isWithin(p, g.granted));
      const before = notGranted();
      await fc.assert(
        fc.asyncProperty(escapePath(g.root), async (input) => {
          // Reads first, destructive operations last, so each path is tried against the tree as it was.
          const calls: (() => unknown)[] = [
            () => g.fsys.read(cap, input),
            () => g.fsys.list(cap, input),
            () => g.fsys.stat(cap, input),
            () => g.fsys.write(cap, input, "W"),
            () => g.fsys.append(cap, input, "W"),
            () => g.fsys.mkdir(cap, input, { recursive: true }),
            () => g.fsys.delete(cap, input),
          ];
          for (const call of calls) {
            let result: unknown;
            try {
              result = await call();
            } catch (error) {
              // Denied, or the OS's answer inside the grant; nothing else.
              if (!(error instanceof CapabilityDenied || error instanceof FileSystemError)) throw error;
            }
            if (Buffer.isBuffer(result)) expect(SECRET_CONTENTS).not.toContain(result.toString());
          }
        }),
        { numRuns: 500 },
      );
      expect(notGranted()).toEqual(before);
    } finally {
      g.cleanup();
    }
  });
});

it("the fixture's paths are real paths (no link above T)", () => {
  expect(fs.realpathSync(f.root)).toBe(f.root);
  expect(path.isAbsolute(f.root)).toBe(true);
});
