import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { check, revocationSignal } from "../../src/kernel/capability.ts";
import { callerMessage } from "../../src/kernel/caller-text.ts";
import { isDenial, Revoked, StoreUnavailable } from "../../src/kernel/errors.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import type { TokenStore } from "../../src/token/store.ts";
import { createTokenMint, toToken, verify } from "../../src/token/token.ts";

/*
 * A token store that cannot be read cannot say what is revoked. Decisions
 * and verifications against it fail closed, but as StoreUnavailable
 * (ERR_STORE_UNAVAILABLE: retry), never as Revoked; and nothing revoked
 * before or during the outage is allowed after it. The outage here is the
 * SQLite file's revocation table made unreadable by another connection (a
 * table the store's statements cannot find), and the store's own handle
 * closed.
 */

const dir = mkdtempSync(join(tmpdir(), "agentcap-store-down-"));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const keys = generateKeyPair();
const publicKeys = { 1: keys.publicKey };
const call = { action: "tool.call", tool: "a" } as const;
let files = 0;

/** A store file, a mint and a verifying store on it, and a raw connection to break and repair the file with. */
function world() {
  const file = join(dir, `tokens-${++files}.db`);
  const minting = openSqliteTokenStore(file);
  const verifying = openSqliteTokenStore(file);
  const mint = createTokenMint({ issuer: "test", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }), store: minting });
  const raw = new Database(file);
  const down = () => raw.exec("ALTER TABLE agentcap_revoked RENAME TO agentcap_revoked_away");
  const up = () => raw.exec("ALTER TABLE agentcap_revoked_away RENAME TO agentcap_revoked");
  /** A revocation of `principal` committed while the table is away: what another process would have written during the outage. */
  const revokeWhileDown = (principal: string) =>
    raw.prepare("INSERT OR REPLACE INTO agentcap_revoked_away (kind, id, reason, revoked_at) VALUES ('principal', ?, 'left during the outage', ?)").run(principal, Date.now());
  const close = async () => {
    raw.close();
    await minting.close();
    await verifying.close();
  };
  return { mint, minting, verifying, down, up, revokeWhileDown, close };
}

const verifyIn = (token: string, store: TokenStore) => verify(token, { publicKeys, store });

/** What a verification came to: allowed, or the code it was refused with. */
function verdict(token: string, store: TokenStore): string {
  try {
    const cap = verifyIn(token, store);
    const d = check(cap, call);
    return d.allowed ? "allowed" : d.code;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

describe("a token store that cannot be read (SQLite)", () => {
  it("refuses verification, decisions and minting with StoreUnavailable, never claiming a revocation, and answers again once readable", async () => {
    const w = world();
    try {
      const token = toToken(w.mint.issue({ id: "alice" }));
      const live = verifyIn(token, w.verifying);
      expect(check(live, call).allowed).toBe(true);
      w.down();

      const refused = (() => {
        try {
          verifyIn(token, w.verifying);
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(refused).toBeInstanceOf(StoreUnavailable);
      const error = refused as StoreUnavailable;
      expect(error.code).toBe("ERR_STORE_UNAVAILABLE");
      expect(isDenial(error)).toBe(true);
      expect(error).not.toBeInstanceOf(Revoked);
      expect(error.message).toMatch(/could not be checked for revocation/);
      expect(error.message).toMatch(/retry/);
      expect(error.message).not.toMatch(/was revoked|has been revoked/);
      // The operator's message names the engine's reason; the caller's words do not, and tell it to retry.
      expect(error.message).toMatch(/no such table/);
      const shown = callerMessage(error);
      expect(shown.code).toBe("ERR_STORE_UNAVAILABLE");
      expect(shown.text).toMatch(/^the capability could not be checked for revocation: the token store cannot be read now, so nothing was done; retry shortly$/);

      const decision = check(live, call);
      expect(decision).toMatchObject({ allowed: false, code: "ERR_STORE_UNAVAILABLE", rule: "revocations" });
      expect(decision.allowed ? "" : decision.because).not.toMatch(/revoked/);
      expect(() => w.mint.issue({ id: "bob" })).toThrow(StoreUnavailable);
      await expect(w.verifying.list()).rejects.toBeInstanceOf(StoreUnavailable);
      expect(w.verifying.unavailable()).toMatch(/cannot read its SQLite file/);

      w.up();
      expect(check(live, call).allowed).toBe(true);
      expect(verdict(token, w.verifying)).toBe("allowed");
      expect(w.verifying.unavailable()).toBeNull();
      expect(toToken(w.mint.issue({ id: "bob" }))).toEqual(expect.any(String));
    } finally {
      await w.close();
    }
  });

  it("work in flight is stopped when the store stops answering, with StoreUnavailable", async () => {
    const w = world();
    try {
      const live = verifyIn(toToken(w.mint.issue({ id: "alice" })), w.verifying);
      const { signal, dispose } = revocationSignal(live);
      expect(signal.aborted).toBe(false);
      w.down();
      // The next decision is where the store finds it cannot read; the signal hears of it then.
      expect(check(live, call)).toMatchObject({ allowed: false, code: "ERR_STORE_UNAVAILABLE" });
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toBeInstanceOf(StoreUnavailable);
      dispose();
    } finally {
      await w.close();
    }
  });

  it("a closed store refuses what it verified (it would never hear of a revocation again)", async () => {
    const w = world();
    const token = toToken(w.mint.issue({ id: "alice" }));
    const live = verifyIn(token, w.verifying);
    expect(check(live, call).allowed).toBe(true);
    await w.close();
    expect(check(live, call)).toMatchObject({ allowed: false, code: "ERR_STORE_UNAVAILABLE" });
    expect(() => verifyIn(token, w.verifying)).toThrow(StoreUnavailable);
    expect(w.verifying.unavailable()).toBe("the token store is closed");
  });

  /*
   * Bypass attempts: whatever the order of outage and revocation, nothing
   * revoked is ever allowed, and an outage is never reported as a
   * revocation.
   */
  const table: readonly {
    readonly name: string;
    readonly run: (w: ReturnType<typeof world>, token: string) => Promise<readonly string[]>;
    readonly expected: readonly string[];
  }[] = [
    {
      name: "store down at verify time",
      run: (w, token) => {
        w.down();
        return Promise.resolve([verdict(token, w.verifying)]);
      },
      expected: ["ERR_STORE_UNAVAILABLE"],
    },
    {
      name: "store down, then up",
      run: (w, token) => {
        w.down();
        const during = verdict(token, w.verifying);
        w.up();
        return Promise.resolve([during, verdict(token, w.verifying)]);
      },
      expected: ["ERR_STORE_UNAVAILABLE", "allowed"],
    },
    {
      name: "revoked before the outage: refused during it and after it",
      run: async (w, token) => {
        await w.minting.revoke({ principal: "alice" }, { reason: "left" });
        w.down();
        const during = verdict(token, w.verifying);
        w.up();
        return [during, verdict(token, w.verifying)];
      },
      expected: ["ERR_STORE_UNAVAILABLE", "ERR_REVOKED"],
    },
    {
      name: "revoked during the outage, where this store could not read it: refused after it",
      run: (w, token) => {
        w.down();
        const during = verdict(token, w.verifying);
        w.revokeWhileDown("alice");
        w.up();
        return Promise.resolve([during, verdict(token, w.verifying)]);
      },
      expected: ["ERR_STORE_UNAVAILABLE", "ERR_REVOKED"],
    },
    {
      name: "a capability verified before the outage, revoked during it: refused after it",
      run: (w, token) => {
        const live = verifyIn(token, w.verifying);
        w.down();
        const during = check(live, call);
        w.revokeWhileDown("alice");
        w.up();
        const after = check(live, call);
        return Promise.resolve([during.allowed ? "allowed" : during.code, after.allowed ? "allowed" : after.code]);
      },
      expected: ["ERR_STORE_UNAVAILABLE", "ERR_REVOKED"],
    },
    {
      name: "two outages in a row, revoked during the first",
      run: (w, token) => {
        w.down();
        w.revokeWhileDown("alice");
        w.up();
        const between = verdict(token, w.verifying);
        w.down();
        const second = verdict(token, w.verifying);
        w.up();
        return Promise.resolve([between, second, verdict(token, w.verifying)]);
      },
      expected: ["ERR_REVOKED", "ERR_STORE_UNAVAILABLE", "ERR_REVOKED"],
    },
  ];
  it.each(table)("$name", async ({ run, expected }) => {
    const w = world();
    try {
      expect(await run(w, toToken(w.mint.issue({ id: "alice" })))).toEqual(expected);
    } finally {
      await w.close();
    }
  });

  it("property: under any sequence of outages, recoveries and revocations, a check is allowed only when the store is readable and the principal was never revoked", async () => {
    const principals = ["alice", "bob", "carol"] as const;
    const step = fc.oneof(
      fc.constant({ op: "down" as const }),
      fc.constant({ op: "up" as const }),
      fc.record({ op: fc.constant("revoke" as const), who: fc.constantFrom(...principals) }),
      fc.record({ op: fc.constant("check" as const), who: fc.constantFrom(...principals), fresh: fc.boolean() }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        const w = world();
        try {
          const tokens = new Map(principals.map((p) => [p, toToken(w.mint.issue({ id: p }))]));
          const held = new Map(principals.map((p) => [p, verifyIn(tokens.get(p) as string, w.verifying)]));
          let isDown = false;
          const revoked = new Set<string>();
          for (const s of steps) {
            if (s.op === "down" && !isDown) {
              w.down();
              isDown = true;
            } else if (s.op === "up" && isDown) {
              w.up();
              isDown = false;
            } else if (s.op === "revoke") {
              if (isDown) w.revokeWhileDown(s.who);
              else await w.minting.revoke({ principal: s.who }, { reason: "gone" });
              revoked.add(s.who);
            } else if (s.op === "check") {
              const got = s.fresh ? verdict(tokens.get(s.who) as string, w.verifying) : ((d) => (d.allowed ? "allowed" : d.code))(check(held.get(s.who) as never, call));
              const expected = isDown ? "ERR_STORE_UNAVAILABLE" : revoked.has(s.who) ? "ERR_REVOKED" : "allowed";
              expect(got).toBe(expected);
            }
          }
        } finally {
          await w.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});
