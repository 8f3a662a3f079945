import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createApprovals, type Approvals } from "../../src/kernel/approvals.ts";
import { assertAuthorized, authorize, check, narrow, revocable, type Capability } from "../../src/kernel/capability.ts";
import { createManualClock } from "../../src/kernel/clock.ts";
import { ApprovalRefused, ApprovalRequired, CapabilityDenied, Expired, InvalidInput, Revoked } from "../../src/kernel/errors.ts";
import type { Grant } from "../../src/kernel/grant.ts";
import type { Request } from "../../src/kernel/request.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { bindArguments, defineTool } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink, type MemorySink } from "./memory-sink.ts";

const sent: { to: string; amount: string }[] = [];
const stolen: Capability[] = [];

const transfer = defineTool(
  {
    name: "transfer",
    description: "Send money.",
    input: z.object({ to: z.string(), amount: z.string() }),
    needs: () => [{ action: "http.request", method: "POST", url: "https://bank.example/transfers" }],
  },
  (input, cap) => {
    stolen.push(cap);
    assertAuthorized(cap, { action: "http.request", method: "POST", url: "https://bank.example/transfers" });
    sent.push(input);
    return "sent";
  },
);

const lookup = defineTool(
  { name: "lookup", description: "Look up a balance.", input: z.object({}), needs: () => [] },
  () => 42,
);

const APPROVED_TOOLS: Grant = {
  tools: ["transfer", "lookup"],
  http: [{ origin: "https://bank.example", methods: ["POST"] }],
  approval: [{ tools: ["transfer"], approvers: ["bob", "carol", "role:treasurer"], quorum: 2 }],
};

interface World {
  readonly clock: ReturnType<typeof createManualClock>;
  readonly sink: MemorySink;
  readonly approvals: Approvals;
  readonly alice: Capability;
  readonly bob: Capability;
  readonly carol: Capability;
  readonly dave: Capability;
  readonly call: (input: unknown, cap?: Capability) => Promise<unknown>;
  /** Waits until `n` requests are pending. */
  readonly pending: (n?: number) => Promise<string>;
}

function world(grant: Grant = APPROVED_TOOLS, options: { waitSeconds?: number; grantSeconds?: number } = {}): World {
  const clock = createManualClock(1_000_000);
  const sink = memorySink();
  const mint = createMint({ issuer: "test", clock, policy: (p) => (p.id === "alice" ? grant : { tools: ["lookup"] }) });
  const approvals = createApprovals({ audit: sink, clock, mints: [mint.id], ...options });
  const dispatcher = createDispatcher({ tools: [transfer, lookup], audit: sink, approvals });
  const alice = mint.issue({ id: "alice", tenants: [] });
  return {
    clock,
    sink,
    approvals,
    alice,
    bob: mint.issue({ id: "bob", tenants: [] }),
    carol: mint.issue({ id: "carol", tenants: [] }),
    dave: mint.issue({ id: "dave", tenants: [], roles: ["treasurer"] }),
    call: (input, cap = alice) => dispatcher.call("transfer", input, cap),
    pending: async (n = 1) => {
      for (let i = 0; i < 200; i++) {
        const list = await approvals.list();
        if (list.length >= n) return (list[0] as { id: string }).id;
        await new Promise((r) => setTimeout(r, 1));
      }
      throw new Error("no pending approval");
    },
  };
}

const stages = (sink: MemorySink) => sink.events.filter((e) => e.kind === "approval").map((e) => `${e.approval?.stage ?? ""}${e.approval?.by === undefined ? "" : `:${e.approval.by}`}`);

describe("approval bound to the exact call", () => {
  it("suspends the call, shows approvers exactly the call, and runs it once after m of n approve", async () => {
    const w = world();
    const running = w.call({ to: "mallory", amount: "100" });
    const id = await w.pending();
    const view = await w.approvals.show(id);
    expect(view).toMatchObject({
      status: "pending",
      tool: "transfer",
      caller: { principal: "alice" },
      request: { action: "tool.call", tool: "transfer" },
      args: { to: "mallory", amount: "100" },
      requirements: [{ approvers: ["bob", "carol", "role:treasurer"], quorum: 2 }],
      policyVersion: "1",
    });
    expect(view.argsHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(view)).not.toMatch(/hunter|token/i);
    await w.approvals.approve(id, w.bob);
    expect((await w.approvals.show(id)).status).toBe("pending");
    await w.approvals.approve(id, w.dave);
    await expect(running).resolves.toBe("sent");
    expect((await w.approvals.show(id)).status).toBe("executed");
    expect(stages(w.sink)).toEqual(["proposed", "approved:bob", "approved:dave", "executed"]);
    const executed = w.sink.events.find((e) => e.approval?.stage === "executed");
    expect(executed?.subject.lineage.some((l) => l.approval?.id === id && l.approval.approvers.join() === "bob,dave")).toBe(true);
    // The tool ran under the approved capability: its event's lineage holds the approval.
    const toolEvent = w.sink.toolEvents().find((e) => e.decision.allowed);
    expect(toolEvent?.subject.lineage.some((l) => l.approval?.id === id)).toBe(true);
  });

  it("lists tools waiting for approval, and denies them outright without an approval flow", async () => {
    const w = world();
    const sink = memorySink();
    const bare = createDispatcher({ tools: [transfer, lookup], audit: sink });
    expect(bare.catalog(w.alice).map((t) => t.name)).toEqual(["lookup"]);
    await expect(bare.call("transfer", { to: "x", amount: "1" }, w.alice)).rejects.toBeInstanceOf(ApprovalRequired);
    expect(sink.events.at(-1)?.decision).toMatchObject({ allowed: false, code: "ERR_APPROVAL_REQUIRED", rule: "approval" });
    const withFlow = createDispatcher({ tools: [transfer, lookup], audit: sink, approvals: w.approvals });
    expect(withFlow.catalog(w.alice).map((t) => t.name)).toEqual(["transfer", "lookup"]);
  });

  describe("an approved call whose needs, worked out again, differ from what its approvers saw", () => {
    /** Runs `tool` for alice with bob approving whatever is proposed; what the handler did, and how the call ended. */
    async function approvedRun(needs: (plan: number) => Request[], handler: (ctx: { call: (tool: string, input: unknown, cap: Capability, options?: object) => Promise<unknown> }, cap: Capability) => Promise<string> | string, extra: Grant = {}) {
      const clock = createManualClock(1_000_000);
      const sink = memorySink();
      const grant: Grant = {
        tools: ["drift", "helper"],
        fs: [{ path: "/data", ops: ["read", "write"] }],
        approval: [{ tools: ["drift", "helper"], approvers: ["bob"] }, { actions: ["fs.write"], approvers: ["bob"] }],
        ...extra,
      };
      const mint = createMint({ issuer: "test", clock, policy: (p) => (p.id === "alice" ? grant : {}) });
      const approvals = createApprovals({ audit: sink, clock, mints: [mint.id] });
      let plans = 0;
      const ran: string[] = [];
      const drift = defineTool({ name: "drift", description: "Needs that change.", input: z.object({}), needs: () => needs(plans++) }, async (_i, cap, ctx) => {
        ran.push("drift");
        return handler(ctx, cap);
      });
      const helper = defineTool({ name: "helper", description: "A sub-tool.", input: z.object({}), needs: () => [] }, () => {
        ran.push("helper");
        return "helped";
      });
      const dispatcher = createDispatcher({ tools: [drift, helper], audit: sink, approvals });
      const bob = mint.issue({ id: "bob", tenants: [] });
      // Bob approves only the first thing proposed (drift as its approvers saw it); anything asked later stays pending.
      const watch = (async () => {
        for (let i = 0; i < 300; i++) {
          const first = (await approvals.list())[0];
          if (first !== undefined) {
            await approvals.approve(first.id, bob);
            return;
          }
          await new Promise((r) => setTimeout(r, 1));
        }
      })();
      const outcome = await dispatcher.call("drift", {}, mint.issue({ id: "alice", tenants: [] })).then(
        (v) => ({ ok: true as const, value: v }),
        (e: unknown) => ({ ok: false as const, error: e }),
      );
      await watch;
      const all = await approvals.list({ all: true });
      return { outcome, ran, pending: (await approvals.list()).map((v) => v.tool), executed: all.filter((v) => v.status === "executed").length, lastRequest: sink.toolEvents().at(-1)?.request };
    }
    const write = (content: string): Request => bindArguments({ action: "fs.write", path: "/data/x" }, { content });

    it.each([
      ["a write bound to other arguments", (n: number) => [write(n === 0 ? "approved" : "other")]],
      ["a write the proposal bound, now unbound", (n: number) => [n === 0 ? write("approved") : { action: "fs.write", path: "/data/x" }]],
      ["a write to another file", (n: number) => [n === 0 ? write("a") : bindArguments({ action: "fs.write", path: "/data/y" }, { content: "a" })]],
      ["a write added behind a sub-tool need", (n: number) => (n === 0 ? [{ action: "tool.call", tool: "helper" }] : [{ action: "tool.call", tool: "helper" }, write("a")])],
      ["a write added for another tenant", (n: number) => (n === 0 ? [write("a")] : [write("a"), { action: "fs.write", path: "/data/x", tenant: "t2" }])],
    ] as [string, (n: number) => Request[]][])("%s: refused before the handler runs", async (_name, needs) => {
      const { outcome, ran, executed } = await approvedRun(needs, () => "ran");
      expect(executed).toBe(1);
      expect(outcome.ok).toBe(false);
      expect((outcome as { error: unknown }).error).toBeInstanceOf(ApprovalRequired);
      expect(ran).toEqual([]);
    });

    it("a read that became a write: refused with ApprovalRequired before the handler runs, and recorded as the write", async () => {
      const { outcome, ran, executed, lastRequest } = await approvedRun((n) => [n === 0 ? { action: "fs.read", path: "/data/x" } : { action: "fs.write", path: "/data/x" }], () => "ran");
      expect(executed).toBe(1);
      expect(outcome.ok).toBe(false);
      expect((outcome as { error: unknown }).error).toBeInstanceOf(ApprovalRequired);
      expect(ran).toEqual([]);
      expect(lastRequest).toMatchObject({ action: "fs.write", path: "/data/x" });
    });

    it("a sub-tool need the approval did not name lets the handler run, but the sub-call asks approvers of its own and runs nothing meanwhile", async () => {
      const { outcome, ran, pending } = await approvedRun(
        (n) => (n === 0 ? [] : [{ action: "tool.call", tool: "helper" }]),
        async (ctx, cap) => {
          try {
            return String(await ctx.call("helper", {}, cap, { approval: { signal: AbortSignal.timeout(50) } }));
          } catch (e) {
            return `sub-call refused: ${(e as Error).name}`;
          }
        },
      );
      expect(outcome).toMatchObject({ ok: true });
      expect(String((outcome as { value: unknown }).value)).toMatch(/^sub-call refused/);
      expect(ran).toEqual(["drift"]);
      expect(pending).toEqual([]);
    });

    it("a sub-tool need the approval named is covered by it: the sub-call runs once, under that approval", async () => {
      const { outcome, ran } = await approvedRun(() => [{ action: "tool.call", tool: "helper" }], async (ctx, cap) => String(await ctx.call("helper", {}, cap)));
      expect(outcome).toMatchObject({ ok: true, value: "helped" });
      expect(ran).toEqual(["drift", "helper"]);
    });
  });

  it("a denial fails the call with a clear error and nothing runs", async () => {
    const w = world();
    const before = sent.length;
    const running = w.call({ to: "mallory", amount: "100" });
    const id = await w.pending();
    await w.approvals.deny(id, w.carol, "not to mallory");
    const error = await running.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApprovalRefused);
    expect((error as ApprovalRefused).status).toBe("denied");
    expect((error as Error).message).toContain("carol denied the call: not to mallory");
    expect(sent.length).toBe(before);
    expect(stages(w.sink)).toEqual(["proposed", "denied:carol"]);
  });

  it("expires when nobody approves in time, and a late approval is refused", async () => {
    const w = world(APPROVED_TOOLS, { waitSeconds: 60 });
    const running = w.call({ to: "mallory", amount: "100" });
    const id = await w.pending();
    await w.approvals.approve(id, w.bob);
    w.clock.advance(60_000);
    await expect(w.approvals.approve(id, w.carol)).rejects.toThrow(/no longer pending: it was expired/);
    const error = await running.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApprovalRefused);
    expect((error as ApprovalRefused).status).toBe("expired");
    expect(stages(w.sink)).toEqual(["proposed", "approved:bob", "expired"]);
  });

  it("revoking the caller while it waits fails the call with Revoked and cancels the request", async () => {
    const w = world();
    const session = revocable(w.alice);
    const running = w.call({ to: "mallory", amount: "100" }, session.capability);
    const id = await w.pending();
    session.revoke("session closed");
    await expect(running).rejects.toBeInstanceOf(Revoked);
    expect((await w.approvals.show(id)).status).toBe("cancelled");
    await expect(w.approvals.approve(id, w.bob)).rejects.toThrow(/no longer pending: it was cancelled/);
  });

  describe("bypass attempts", () => {
    it("the caller approving their own call is refused, even holding an approver's role", async () => {
      const grant: Grant = { ...APPROVED_TOOLS, approval: [{ tools: ["transfer"], approvers: ["alice", "bob"], quorum: 1 }] };
      const w = world(grant);
      const running = w.call({ to: "mallory", amount: "100" });
      const id = await w.pending();
      await expect(w.approvals.approve(id, w.alice)).rejects.toThrow(/may not approve or deny a call of their own/);
      await expect(w.approvals.deny(id, narrow(w.alice, { tools: ["lookup"] }), "x")).rejects.toBeInstanceOf(CapabilityDenied);
      await w.approvals.approve(id, w.bob);
      await expect(running).resolves.toBe("sent");
    });

    it("an approver approving twice is refused: two of n means two principals", async () => {
      const w = world();
      const running = w.call({ to: "mallory", amount: "100" });
      const id = await w.pending();
      await w.approvals.approve(id, w.bob);
      await expect(w.approvals.approve(id, w.bob)).rejects.toThrow(/has already approved/);
      // The same principal through another capability of theirs is the same approver.
      await expect(w.approvals.approve(id, narrow(w.bob, { tools: ["lookup"] }))).rejects.toThrow(/has already approved/);
      // Two at once: only one counts.
      const both = await Promise.allSettled([w.approvals.approve(id, w.carol), w.approvals.approve(id, w.carol)]);
      expect(both.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
      await expect(running).resolves.toBe("sent");
      expect(stages(w.sink)).toEqual(["proposed", "approved:bob", "approved:carol", "executed"]);
    });

    it("someone no rule names cannot approve; a revoked or foreign approver cannot either", async () => {
      const w = world();
      const running = w.call({ to: "mallory", amount: "100" });
      const id = await w.pending();
      const eve = createMint({ issuer: "test", policy: () => ({}) }).issue({ id: "eve", tenants: [] });
      await expect(w.approvals.approve(id, eve)).rejects.toBeInstanceOf(CapabilityDenied);
      const foreignBob = createMint({ issuer: "test", policy: () => ({}) }).issue({ id: "bob", tenants: [] });
      await expect(w.approvals.approve(id, foreignBob)).rejects.toThrow(/mint this resource does not trust/);
      const gone = revocable(w.carol);
      gone.revoke();
      await expect(w.approvals.approve(id, gone.capability)).rejects.toBeInstanceOf(Revoked);
      await expect(w.approvals.approve(id, { mint: { principal: "bob" } } as unknown as Capability)).rejects.toThrow(/own capability/);
      expect((await w.approvals.show(id)).approvals).toEqual([]);
      await w.approvals.deny(id, w.bob, "no");
      await expect(running).rejects.toBeInstanceOf(ApprovalRefused);
    });

    it("the approved capability is bound to the exact call: other arguments, no arguments, a second use and a replay after it returned are refused", async () => {
      const w = world();
      stolen.length = 0;
      let approved: Capability | null = null;
      const flow = w.approvals.run(w.alice, { action: "tool.call", tool: "transfer" }, { tool: "transfer", args: { to: "bob", amount: "5" } }, (cap) => {
        approved = cap;
        expect(check(cap, { action: "tool.call", tool: "transfer" }, { args: { amount: "5", to: "bob" } }).allowed).toBe(true);
        expect(check(cap, { action: "tool.call", tool: "transfer" }, { args: { to: "mallory", amount: "5" } })).toMatchObject({ code: "ERR_APPROVAL_REQUIRED" });
        expect(check(cap, { action: "tool.call", tool: "transfer" })).toMatchObject({ code: "ERR_APPROVAL_REQUIRED" });
        expect(authorize(cap, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } }).allowed).toBe(true);
        expect(authorize(cap, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } })).toMatchObject({ code: "ERR_BUDGET_EXHAUSTED" });
        return "done";
      });
      const id = await w.pending();
      await w.approvals.approve(id, w.bob);
      await w.approvals.approve(id, w.carol);
      await expect(flow).resolves.toBe("done");
      // Replayed after the call returned: revoked.
      expect(check(approved as unknown as Capability, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } })).toMatchObject({ code: "ERR_REVOKED" });
    });

    it("the handler's capability cannot be replayed for another transfer, nor can the approval be reused by the dispatcher", async () => {
      const w = world();
      stolen.length = 0;
      const running = w.call({ to: "bob", amount: "5" });
      const id = await w.pending();
      await w.approvals.approve(id, w.bob);
      await w.approvals.approve(id, w.carol);
      await running;
      const kept = stolen[0] as Capability;
      await expect(w.call({ to: "mallory", amount: "5000" }, kept)).rejects.toBeInstanceOf(Revoked);
      expect(await w.approvals.list()).toEqual([]);
    });

    it("the approval expires 60 seconds after it is granted at the latest", async () => {
      const w = world(APPROVED_TOOLS, { grantSeconds: 60 });
      const flow = w.approvals.run(w.alice, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } }, (cap) => {
        w.clock.advance(60_000);
        return check(cap, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } });
      });
      const id = await w.pending();
      await w.approvals.approve(id, w.bob);
      await w.approvals.approve(id, w.carol);
      expect(await flow).toMatchObject({ code: "ERR_EXPIRED" });
      expect(() => createApprovals({ audit: w.sink, grantSeconds: 61 })).toThrow(InvalidInput);
    });

    it("another principal cannot use the approval: it lives in the caller's chain", async () => {
      const w = world();
      const bobCap = narrow(w.bob, { tools: ["lookup"] });
      const flow = w.approvals.run(w.alice, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } }, (cap) => cap.mint.principal);
      const id = await w.pending();
      await w.approvals.approve(id, w.bob);
      await w.approvals.approve(id, w.carol);
      expect(await flow).toBe("alice");
      expect(check(bobCap, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } }).allowed).toBe(false);
    });

    it("a narrowed child cannot drop the requirement, and a child may add a stricter one", async () => {
      const w = world();
      const child = narrow(w.alice, { tools: ["transfer"], http: [{ origin: "https://bank.example", methods: ["POST"] }] });
      expect(check(child, { action: "tool.call", tool: "transfer" })).toMatchObject({ code: "ERR_APPROVAL_REQUIRED", link: 0 });
      const stricter = narrow(w.alice, { tools: ["transfer"], approval: [{ tools: ["transfer"], approvers: ["role:treasurer"], quorum: 1 }] });
      const flow = w.approvals.run(stricter, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } }, () => "ran");
      const id = await w.pending();
      expect((await w.approvals.show(id)).requirements).toEqual([
        { approvers: ["bob", "carol", "role:treasurer"], quorum: 2 },
        { approvers: ["role:treasurer"], quorum: 1 },
      ]);
      await w.approvals.approve(id, w.bob);
      await w.approvals.approve(id, w.carol);
      expect((await w.approvals.show(id)).status).toBe("pending");
      await w.approvals.approve(id, w.dave);
      await expect(flow).resolves.toBe("ran");
    });

    it("an approval made before a stricter link is appended does not satisfy it", async () => {
      const w = world();
      const flow = w.approvals.run(w.alice, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } }, (cap) =>
        check(narrow(cap, { tools: ["transfer"], approval: [{ tools: ["transfer"], approvers: ["erin"] }] }), { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } }),
      );
      const id = await w.pending();
      await w.approvals.approve(id, w.bob);
      await w.approvals.approve(id, w.carol);
      expect(await flow).toMatchObject({ code: "ERR_APPROVAL_REQUIRED", link: 3 });
    });

    it("a request the capability does not allow at all is denied, not sent for approval", async () => {
      const w = world();
      await expect(w.approvals.run(w.bob, { action: "tool.call", tool: "transfer" }, {}, () => "ran")).rejects.toBeInstanceOf(CapabilityDenied);
      expect(await w.approvals.list({ all: true })).toEqual([]);
      const expired = narrow(w.alice, { tools: ["transfer"], expiresAt: 1 });
      await expect(w.approvals.run(expired, { action: "tool.call", tool: "transfer" }, {}, () => "ran")).rejects.toBeInstanceOf(Expired);
    });

    it("a call no rule matches runs at once under the caller's own capability", async () => {
      const w = world();
      await expect(w.approvals.run(w.alice, { action: "tool.call", tool: "lookup" }, {}, (cap) => cap === w.alice)).resolves.toBe(true);
    });

    it("a single-use approved capability cannot be spent twice by concurrent uses", async () => {
      const w = world();
      const flow = w.approvals.run(w.alice, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } }, (cap) =>
        Array.from({ length: 20 }, () => authorize(cap, { action: "tool.call", tool: "transfer" }, { args: { to: "bob", amount: "5" } }).allowed).filter(Boolean).length,
      );
      const id = await w.pending();
      await w.approvals.approve(id, w.bob);
      await w.approvals.approve(id, w.carol);
      expect(await flow).toBe(1);
    });
  });

  it("argument patterns ask approval only for matching arguments", async () => {
    const grant: Grant = { ...APPROVED_TOOLS, approval: [{ tools: ["transfer"], input: { to: { prefix: "ext:" } }, approvers: ["bob"] }] };
    const w = world(grant);
    await expect(w.call({ to: "int:savings", amount: "5" })).resolves.toBe("sent");
    expect(await w.approvals.list({ all: true })).toEqual([]);
    const running = w.call({ to: "ext:mallory", amount: "5" });
    const id = await w.pending();
    await w.approvals.approve(id, w.bob);
    await expect(running).resolves.toBe("sent");
  });

  it("a step that cannot be recorded fails closed: no request, no approval counted", async () => {
    const w = world();
    w.sink.failWith(new Error("disk full"), "write");
    await expect(w.call({ to: "bob", amount: "5" })).rejects.toThrow(/could not record the proposed step/);
    expect(await w.approvals.list({ all: true })).toEqual([]);
    w.sink.failWith(null);
    const running = w.call({ to: "bob", amount: "5" });
    const id = await w.pending();
    w.sink.failWith(new Error("disk full"), "write");
    await expect(w.approvals.approve(id, w.bob)).rejects.toThrow(/could not record the approved step/);
    expect((await w.approvals.show(id)).approvals).toEqual([]);
    w.sink.failWith(null);
    await w.approvals.approve(id, w.bob);
    await w.approvals.approve(id, w.carol);
    await expect(running).resolves.toBe("sent");
  });
});
