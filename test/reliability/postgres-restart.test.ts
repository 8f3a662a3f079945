import { readFileSync } from "node:fs";
import path from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSignerKey, splitNotes } from "../../src/audit/checkpoint.ts";
import { openAuditStore } from "../../src/audit/open.ts";
import { openPostgresTokenStore } from "../../src/token/postgres-store.ts";
import { createTokenMint, toToken } from "../../src/token/token.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "../mcp/support.ts";
import { privatePostgresSkipReason, startPrivatePostgres, type PrivatePostgres } from "../support/private-postgres.ts";
import { startGateway, stopGently, until, type GatewayProcess } from "./processes.ts";

/*
 * The Postgres server itself restarted under a running gateway: a private
 * server of this test's own (the shared one serves other runs), stopped
 * with `pg_ctl stop -m immediate` while a client keeps calling, so the
 * gateway's connections end without a goodbye and the next start runs the
 * server's crash recovery. While it is down, every call fails closed with a
 * clear error (ERR_AUDIT_FAILURE, or ERR_STORE_UNAVAILABLE: never a
 * revocation) and nothing hangs; a principal is revoked while the server is
 * up again but reachable only through its Unix socket (the gateway, on TCP,
 * still cannot reach it); once TCP is back the gateway serves again without
 * a restart of its own, the revoked principal stays refused, every call the
 * client saw succeed has its record, and the log verifies.
 */

const CALL_TIMEOUT_MS = 15_000;
const AUDIT_SCHEMA = "agentcap_audit";
const TOKEN_SCHEMA = "agentcap_tokens";

let server: PrivatePostgres;
let fixture: Fixture;
let gateway: GatewayProcess;

const read = (client: Client) =>
  client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }, undefined, { timeout: CALL_TIMEOUT_MS }) as Promise<CallToolResult>;

/** What one call of the running client came to. */
type Outcome = "ok" | "ERR_AUDIT_FAILURE" | "ERR_STORE_UNAVAILABLE" | "ERR_REVOKED" | "refused at connect" | `other: ${string}`;

/**
 * A client calling all along, one call after another: when its session is
 * closed it opens a new one. Records what each call came to, the ids of the
 * sessions whose calls succeeded, and how long the slowest call took.
 */
function keepCalling(url: string, token: string) {
  const outcomes: Outcome[] = [];
  const sessions = new Map<string, number>();
  let slowest = 0;
  const state = { stopped: false };
  const done = (async () => {
    let session: Awaited<ReturnType<typeof httpClient>> | null = null;
    while (!state.stopped) {
      const t0 = Date.now();
      if (session === null) {
        session = await httpClient(url, token).catch(() => null);
        if (session === null) {
          outcomes.push("refused at connect");
          await new Promise((resolve) => setTimeout(resolve, 50));
          continue;
        }
      }
      try {
        const result = await read(session.client);
        const text = textOf(result);
        if (result.isError !== true && text.includes("hello from the workspace")) {
          outcomes.push("ok");
          const id = session.transport.sessionId ?? "";
          sessions.set(id, (sessions.get(id) ?? 0) + 1);
        } else {
          const code = /^(ERR_AUDIT_FAILURE|ERR_STORE_UNAVAILABLE): /.exec(text)?.[1] as "ERR_AUDIT_FAILURE" | "ERR_STORE_UNAVAILABLE" | undefined;
          outcomes.push(code ?? `other: ${text.slice(0, 120)}`);
        }
      } catch (e) {
        const code = /ERR_REVOKED|ERR_STORE_UNAVAILABLE/.exec(String(e))?.[0] as "ERR_REVOKED" | "ERR_STORE_UNAVAILABLE" | undefined;
        outcomes.push(code ?? `other: ${String(e).slice(0, 120)}`);
        await session.client.close().catch(() => undefined);
        session = null;
      }
      slowest = Math.max(slowest, Date.now() - t0);
    }
    await session?.client.close().catch(() => undefined);
  })();
  return {
    outcomes,
    sessions,
    slowest: () => slowest,
    stop: async () => {
      state.stopped = true;
      await done;
    },
  };
}

describe.skipIf(privatePostgresSkipReason !== null)(
  privatePostgresSkipReason === null ? "a Postgres restart under a running gateway" : `a Postgres restart under a running gateway (skipped: ${privatePostgresSkipReason})`,
  () => {
    beforeAll(async () => {
      server = await startPrivatePostgres();
      fixture = makeFixture({
        tokenStore: { kind: "postgres", url: server.url, schema: TOKEN_SCHEMA },
        audit: {
          kind: "postgres",
          url: server.url,
          schema: AUDIT_SCHEMA,
          checkpoints: { keyFile: "secrets/audit.key", createKeyIfMissing: true, file: "state/audit.checkpoints", everyEntries: 10 },
        },
      });
      gateway = await startGateway(fixture.configFile, "alice");
    }, 120_000);

    afterAll(async () => {
      await stopGently(gateway);
      server.destroy();
      fixture.cleanup();
    }, 60_000);

    it("calls fail closed while it is down, the gateway recovers by itself, and a principal revoked meanwhile stays refused", async () => {
      const keys = JSON.parse(readFileSync(path.join(fixture.dir, "keys.json"), "utf8")) as { keyId: number; privateKey: string };
      const minting = await openPostgresTokenStore({ connectionString: server.socketUrl, schema: TOKEN_SCHEMA });
      const mint = createTokenMint({
        issuer: "test-gateway",
        signingKey: keys.privateKey,
        keyId: keys.keyId,
        store: minting,
        policy: () => ({ tools: ["read_file"], fs: [{ path: path.join(fixture.workspace, "public"), ops: ["read"] }] }),
      });
      const carolToken = toToken(mint.issue({ id: "carol" }));
      await minting.close();
      const carol = await httpClient(gateway.url, carolToken);
      expect((await read(carol.client)).isError).not.toBe(true);

      const alice = keepCalling(gateway.url, gateway.token);
      await until("alice's first calls", () => Promise.resolve(alice.outcomes.filter((o) => o === "ok").length >= 5), 30_000);

      server.stop();
      const stoppedAt = alice.outcomes.length;
      await until("alice's calls to be refused", () => Promise.resolve(alice.outcomes.slice(stoppedAt).some((o) => o !== "ok")), 15_000);
      // Refused at the door too: a new session's initialize is answered 503 (retry later), not left hanging, and not called a revocation.
      await expect(httpClient(gateway.url, gateway.token)).rejects.toThrow(/ERR_STORE_UNAVAILABLE/);

      // Up again for everyone but the gateway (Unix socket only): carol is revoked where the gateway cannot hear of it.
      server.start({ tcp: false });
      const revoking = await openPostgresTokenStore({ connectionString: server.socketUrl, schema: TOKEN_SCHEMA, ackTimeoutMs: 500 });
      await revoking.revoke({ principal: "carol" }, { reason: "left while the gateway was cut off" });
      await revoking.close();
      const cutOffAt = alice.outcomes.length;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(alice.outcomes.slice(cutOffAt).filter((o) => o === "ok")).toEqual([]);
      server.stop();

      server.start();
      const backAt = alice.outcomes.length;
      await until("alice's calls to succeed again", () => Promise.resolve(alice.outcomes.slice(backAt).filter((o) => o === "ok").length >= 5), 30_000);
      await alice.stop();

      // While it was down: refused with one of the two clear errors, every time; nothing else (alice was never revoked), and no call near its timeout.
      const refusals = alice.outcomes.filter((o) => o !== "ok");
      expect(refusals.length).toBeGreaterThan(0);
      expect(refusals.filter((o) => o !== "ERR_AUDIT_FAILURE" && o !== "ERR_STORE_UNAVAILABLE" && o !== "refused at connect")).toEqual([]);
      expect(alice.slowest()).toBeLessThan(CALL_TIMEOUT_MS);
      // The server's log says why.
      expect(gateway.stderr()).toMatch(/lost its connection to Postgres/);

      // Revoked during the outage, refused after it: the open session and a new one.
      await expect(read(carol.client)).rejects.toThrow(/ERR_REVOKED/);
      await carol.client.close().catch(() => undefined);
      await expect(httpClient(gateway.url, carolToken)).rejects.toThrow(/401|ERR_REVOKED/);
      expect(gateway.process.exitCode).toBeNull();

      // Every call alice saw succeed has its record, and the log verifies.
      await stopGently(gateway);
      const log = await openAuditStore({ kind: "postgres", url: server.url, schema: AUDIT_SCHEMA, readOnly: true, poolSize: 1 });
      try {
        for (const [sessionId, ok] of alice.sessions) {
          const reads = (await log.query({ sessionId, limit: 10_000 })).filter((r) => r.event.request.action === "fs.read" && r.event.decision.allowed);
          expect(reads.length, `session ${sessionId}`).toBeGreaterThanOrEqual(ok);
        }
        const keyFile = readFileSync(path.join(fixture.dir, "secrets", "audit.key"), "utf8");
        const report = await log.verify({ checkpoints: splitNotes(readFileSync(path.join(fixture.dir, "state", "audit.checkpoints"), "utf8")), verifierKey: parseSignerKey(keyFile).verifierKey });
        expect(report.problems).toEqual([]);
        expect(report.ok).toBe(true);
      } finally {
        await log.close();
      }
    }, 180_000);
  },
);
