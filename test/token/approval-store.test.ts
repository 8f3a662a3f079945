import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createApprovals, type ApprovalStore, type Approvals } from "../../src/kernel/index.ts";
import { createManualClock } from "../../src/kernel/clock.ts";
import { ApprovalRefused, CapabilityDenied, InvalidInput } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { openPostgresApprovalStore, openSqliteApprovalStore } from "../../src/token/index.ts";
import { defineTool } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { databaseUrl, postgresSkipReason } from "../support/postgres.ts";
import { memorySink } from "../tools/memory-sink.ts";

/*
 * Two flows over one shared store stand for two processes: the one holding
 * the call (a gateway) and an approver's (the command line). Each has its own
 * connection to the store; they share nothing else but the clock (and the
 * mint, which stands for the issuer both trust).
 */

const ran: { to: string; amount: string }[] = [];
const transfer = defineTool(
  { name: "transfer", description: "Send money.", input: z.object({ to: z.string(), amount: z.string() }), needs: () => [] },
  (input) => {
    ran.push(input);
    return "sent";
  },
);

interface Engine {
  readonly name: string;
  readonly skip: boolean;
  open(): Promise<ApprovalStore>;
  /** Runs SQL on the store's table directly, as someone with write access to the database could. */
  tamper(sql: (table: string) => string, values: unknown[]): Promise<void>;
  cleanup(): Promise<void>;
}

function sqliteEngine(): Engine {
  const dir = mkdtempSync(path.join(tmpdir(), "agentcap-approvals-"));
  const file = path.join(dir, "tokens.db");
  return {
    name: "SQLite",
    skip: false,
    open: () => Promise.resolve(openSqliteApprovalStore(file)),
    tamper: (sql, values) => {
      const db = new Database(file);
      db.prepare(sql("agentcap_approvals").replace(/\$\d+/g, "?")).run(...values);
      db.close();
      return Promise.resolve();
    },
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}

function postgresEngine(): Engine {
  const schema = `agentcap_appr_${Math.random().toString(16).slice(2, 10)}`;
  const url = databaseUrl ?? "";
  const admin = async (f: (c: pg.Client) => Promise<unknown>) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await f(c);
    } finally {
      await c.end();
    }
  };
  return {
    name: "Postgres",
    skip: postgresSkipReason !== null,
    open: () => openPostgresApprovalStore({ connectionString: url, schema }),
    tamper: (sql, values) => admin((c) => c.query(sql(`${schema}.approval_requests`), values)),
    cleanup: () => admin((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)),
  };
}

for (const engine of [sqliteEngine(), postgresEngine()]) {
  describe.skipIf(engine.skip)(`approval requests shared through the ${engine.name} store`, () => {
    const clock = createManualClock(1_000_000);
    const mint = createMint({ issuer: "test", clock, policy: (p) => (p.id === "alice" ? { tools: ["transfer"], approval: [{ tools: ["transfer"], approvers: ["bob", "carol", "role:treasurer"], quorum: 2 }] } : { tools: [] }) });
    const alice = mint.issue({ id: "alice", tenants: [] });
    const bob = mint.issue({ id: "bob", tenants: [] });
    const carol = mint.issue({ id: "carol", tenants: [] });
    const stores: ApprovalStore[] = [];
    const gatewaySink = memorySink();
    const approverSink = memorySink();
    let gateway: Approvals;
    let approver: Approvals;
    let call: (input: { to: string; amount: string }) => Promise<unknown>;

    beforeAll(async () => {
      const [a, b] = [await engine.open(), await engine.open()];
      stores.push(a, b);
      gateway = createApprovals({ audit: gatewaySink, store: a, clock, mints: [mint.id], pollMs: 5, waitSeconds: 60 });
      approver = createApprovals({ audit: approverSink, store: b, clock, mints: [mint.id], pollMs: 5 });
      const dispatcher = createDispatcher({ tools: [transfer], audit: gatewaySink, approvals: gateway });
      call = (input) => {
        const running = dispatcher.call("transfer", input, alice);
        // The outcome is looked at later in each test: a refusal that comes first is not an unhandled rejection.
        running.catch(() => undefined);
        return running;
      };
    });

    afterAll(async () => {
      for (const s of stores) await s.close();
      await engine.cleanup();
    });

    const pendingId = async () => {
      for (let i = 0; i < 500; i++) {
        const [first] = await approver.list();
        if (first !== undefined) return first.id;
        await new Promise((r) => setTimeout(r, 2));
      }
      throw new Error("no pending approval seen by the approver");
    };

    it("a call held by one process is approved from another and runs once; the history outlives both", async () => {
      const before = ran.length;
      const running = call({ to: "acme", amount: "100" });
      const id = await pendingId();
      const seen = await approver.show(id);
      expect(seen).toMatchObject({ status: "pending", tool: "transfer", caller: { principal: "alice" }, args: { to: "acme", amount: "100" } });
      expect(seen.canonical).toContain("transfer");
      await approver.approve(id, bob);
      await approver.approve(id, carol);
      await expect(running).resolves.toBe("sent");
      expect(ran.length).toBe(before + 1);
      // A store opened afresh (a restarted process) sees what happened.
      const later = await engine.open();
      stores.push(later);
      const reopened = createApprovals({ audit: memorySink(), store: later, clock, mints: [mint.id] });
      const view = await reopened.show(id);
      expect(view.status).toBe("executed");
      expect(view.approvals.map((a) => a.principal)).toEqual(["bob", "carol"]);
      expect(approverSink.events.map((e) => `${e.approval?.stage}:${e.approval?.by ?? ""}`)).toEqual(["approved:bob", "approved:carol"]);
      expect(gatewaySink.events.filter((e) => e.kind === "approval").map((e) => e.approval?.stage)).toEqual(["proposed", "executed"]);
    });

    describe("refused, each one", () => {
      it("the caller approving their own call, from the other process", async () => {
        const running = call({ to: "acme", amount: "1" });
        const id = await pendingId();
        await expect(approver.approve(id, alice)).rejects.toThrow(/may not approve or deny a call of their own/);
        await approver.deny(id, bob, "no");
        await expect(running).rejects.toBeInstanceOf(ApprovalRefused);
      });

      it("the same approver twice, from either process, and twice at once", async () => {
        const running = call({ to: "acme", amount: "2" });
        const id = await pendingId();
        await approver.approve(id, bob);
        await expect(approver.approve(id, bob)).rejects.toThrow(/has already approved/);
        await expect(gateway.approve(id, bob)).rejects.toThrow(/has already approved/);
        const both = await Promise.allSettled([approver.approve(id, carol), gateway.approve(id, carol)]);
        expect(both.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
        await expect(running).resolves.toBe("sent");
      });

      it("an approval after the request expired", async () => {
        const running = call({ to: "acme", amount: "3" });
        const id = await pendingId();
        await approver.approve(id, bob);
        clock.advance(60_000);
        await expect(approver.approve(id, carol)).rejects.toThrow(/no longer pending: it was expired/);
        const error = await running.catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ApprovalRefused);
        expect((error as ApprovalRefused).status).toBe("expired");
      });

      it("a replay: approving an executed request again, or setting it back to approved in the database", async () => {
        const before = ran.length;
        const running = call({ to: "acme", amount: "4" });
        const id = await pendingId();
        await approver.approve(id, bob);
        await approver.approve(id, carol);
        await running;
        await expect(approver.approve(id, bob)).rejects.toThrow(/no longer pending: it was executed/);
        await engine.tamper((t) => `UPDATE ${t} SET status = 'approved' WHERE id = $1`, [id]);
        await new Promise((r) => setTimeout(r, 30));
        expect(ran.length).toBe(before + 1);
        // The same call again is a new request: the old approval does not carry over.
        const again = call({ to: "acme", amount: "4" });
        const second = await pendingId();
        expect(second).not.toBe(id);
        await approver.deny(second, bob, "once was enough");
        await expect(again).rejects.toBeInstanceOf(ApprovalRefused);
        expect(ran.length).toBe(before + 1);
      });

      it("other arguments or another principal written into the stored request: the waiting process runs nothing", async () => {
        for (const [field, value] of [
          ["args", { to: "mallory", amount: "9999" }],
          ["caller", { principal: "mallory", tenants: [], roles: [], requestId: "x" }],
        ] as const) {
          const before = ran.length;
          const running = call({ to: "acme", amount: "5" });
          const id = await pendingId();
          const { view } = (await stores[0]?.get(id)) ?? { view: null };
          const forged = { ...view, [field]: value, ...(field === "args" ? { argsHash: "0".repeat(64) } : {}) };
          const entry = await stores[0]?.get(id);
          await engine.tamper((t) => `UPDATE ${t} SET body = $1 WHERE id = $2`, [JSON.stringify({ view: forged, subject: entry?.subject, proposal: entry?.proposal }), id]);
          await approver.approve(id, bob);
          await approver.approve(id, carol);
          const error = await running.catch((e: unknown) => e);
          expect(error).toBeInstanceOf(ApprovalRefused);
          expect((error as Error).message).toMatch(/no longer describes the call this process proposed/);
          expect(ran.length).toBe(before);
        }
      });

      it("an approver no rule names, and a damaged row", async () => {
        const running = call({ to: "acme", amount: "6" });
        const id = await pendingId();
        const eve = mint.issue({ id: "eve", tenants: [] });
        await expect(approver.approve(id, eve)).rejects.toBeInstanceOf(CapabilityDenied);
        await approver.deny(id, carol, "no");
        await expect(running).rejects.toBeInstanceOf(ApprovalRefused);
        await engine.tamper((t) => `UPDATE ${t} SET body = $1 WHERE id = $2`, ["{not json", id]);
        await expect(approver.show(id)).rejects.toThrow(InvalidInput);
        await expect(approver.show(id)).rejects.toThrow(/damaged/);
      });
    });
  });
}
