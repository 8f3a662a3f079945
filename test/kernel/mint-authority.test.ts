import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { check, createMint, keyMintId, narrow, type Capability } from "../../src/index.ts";
import { createExec } from "../../src/resources/exec/index.ts";
import { createFileSystem } from "../../src/resources/fs/index.ts";
import { createHttpClient } from "../../src/resources/http/index.ts";
import { createSqlDatabase } from "../../src/resources/sql/index.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { createTokenMint, toToken, verify } from "../../src/token/token.ts";
import { createDispatcher, defineTool } from "../../src/tools/index.ts";
import { memorySink } from "../tools/memory-sink.ts";
import Database from "better-sqlite3";

/*
 * Minting is an authority too. Any code in the process can call createMint,
 * even under the application's issuer name; the application's resources and
 * dispatchers, told which mints are its own, deny such roots at their first
 * decision, before anything is looked at, and record the denial naming the
 * mint that really issued the root.
 */
const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "agentcap-mints-")));
fs.writeFileSync(path.join(dir, "note.txt"), "hello");
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const grant = { tools: ["read_note"], fs: [{ path: dir, ops: ["read", "list"] as const }], exec: [{ program: "/bin/true" }], http: [{ origin: "http://127.0.0.1:9", methods: ["GET" as const] }], db: [{ model: "Note", ops: ["read" as const] }] };
const application = createMint({ issuer: "app", policy: () => grant });
// What code that is not the application's can do: its own mint, claiming the application's name.
const impostor = createMint({ issuer: "app", policy: () => grant });
const alice = application.issue({ id: "alice" });
const forged = impostor.issue({ id: "alice" });

describe("a mint's identity", () => {
  it("is recorded in every root it issues, is its own, and no option or principal chooses it", () => {
    expect(application.id).toMatch(/^mint:[0-9a-f-]{36}$/);
    expect(impostor.id).not.toBe(application.id);
    expect(alice.mint.mintId).toBe(application.id);
    expect(forged.mint).toMatchObject({ issuer: "app", principal: "alice", mintId: impostor.id });
    expect(narrow(alice, { tools: ["read_note"] }).mint.mintId).toBe(application.id);
    expect(() => createMint({ issuer: "app", policy: () => grant, id: application.id } as unknown as Parameters<typeof createMint>[0])).not.toThrow();
    expect(createMint({ issuer: "app", policy: () => grant, id: application.id } as unknown as Parameters<typeof createMint>[0]).id).not.toBe(application.id);
  });

  it("of a token mint is its key's, the same in every process that verifies its tokens", () => {
    const keys = generateKeyPair();
    const store = openSqliteTokenStore(":memory:");
    const tokenMint = createTokenMint({ issuer: "app", policy: () => grant, signingKey: keys.privateKey, keyId: 3, store });
    expect(tokenMint.id).toBe(keyMintId(3, keys.publicKey));
    const root = tokenMint.issue({ id: "bob" });
    expect(root.mint.mintId).toBe(tokenMint.id);
    const verified = verify(toToken(narrow(root, { tools: ["read_note"] })), { publicKeys: { 3: keys.publicKey }, store });
    expect(verified.mint.mintId).toBe(tokenMint.id);
    expect(keyMintId(3, generateKeyPair().publicKey)).not.toBe(tokenMint.id);
  });
});

describe("resources and dispatchers told their application's mints", () => {
  const mints = [application.id];

  const denied = async (attempt: Promise<unknown>) => {
    const error = await attempt.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "ERR_CAPABILITY_DENIED", details: { rule: "mint", link: 0 } });
  };

  it("deny a root from another mint at the first decision, record it, and do nothing", async () => {
    const sink = memorySink();
    const files = createFileSystem({ baseDir: dir, audit: sink, mints });
    const opened = fs.openSync;
    let opens = 0;
    const spy = (...args: Parameters<typeof fs.openSync>) => {
      opens++;
      return opened(...args);
    };
    (fs as { openSync: typeof fs.openSync }).openSync = spy;
    try {
      await denied(files.read(forged, "note.txt"));
    } finally {
      (fs as { openSync: typeof fs.openSync }).openSync = opened;
    }
    expect(opens).toBe(0);
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]?.decision).toMatchObject({ allowed: false, rule: "mint" });
    expect(sink.events[0]?.subject.mint.mintId).toBe(impostor.id);
    expect(new TextDecoder().decode(await files.read(alice as Capability<{ fs: "read" }>, "note.txt"))).toBe("hello");

    await denied(createExec({ mints }).run(forged, ["/bin/true"], { cwd: dir }));
    await denied(createHttpClient({ mints }).request(forged, "http://127.0.0.1:9/"));
    const db = new Database(":memory:");
    db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)");
    const sql = createSqlDatabase({ sqlite: db, schema: { Note: { table: "notes", primaryKey: "id", fields: { id: { type: "integer" }, text: { type: "text" } } } }, mints });
    await denied(sql.read(forged, { model: "Note", fields: ["text"] }));
  });

  it("the dispatcher denies, records, and never works out the tool's needs", async () => {
    const sink = memorySink();
    let needsAsked = 0;
    const tool = defineTool(
      { name: "read_note", description: "reads", input: z.object({}), needs: () => (needsAsked++, []) },
      () => "ok",
    );
    const dispatcher = createDispatcher({ tools: [tool], audit: sink, mints });
    await denied(dispatcher.call("read_note", {}, forged));
    expect(needsAsked).toBe(0);
    expect(dispatcher.catalog(forged)).toEqual([]);
    await expect(dispatcher.plan("read_note", {}, forged)).rejects.toMatchObject({ details: { rule: "mint" } });
    expect(sink.toolEvents()[0]?.decision).toMatchObject({ allowed: false, rule: "mint" });
    await expect(dispatcher.call("read_note", {}, alice)).resolves.toBe("ok");
    // Without `mints`, any root is accepted, and its events still name its real mint.
    expect(check(forged, { action: "tool.call", tool: "read_note" }).allowed).toBe(true);
  });

  it.each([[[]], [["app"]], [[42]], ["mint:x"], [[application.id, "mint: nope"]]])("refuse a mints option of %j with InvalidInput", (bad) => {
    expect(() => createFileSystem({ baseDir: dir, mints: bad as unknown as string[] })).toThrow(/mints must be a non-empty list of mint ids/);
    expect(() => createDispatcher({ tools: [], audit: memorySink(), mints: bad as unknown as string[] })).toThrow(/mints must be/);
  });
});
