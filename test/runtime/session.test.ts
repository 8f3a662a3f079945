import { describe, expect, it } from "vitest";
import { CapabilityDenied, InvalidInput } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { check, narrow, SessionClosed } from "../../src/index.ts";
import { authenticateSession, openSession } from "../../src/runtime/session.ts";
import { createWorld, dispatcherFor } from "./world.ts";

describe("Session", () => {
  it("holds the user's root behind a forwarder labelled with the session", async () => {
    const world = createWorld();
    const session = openSession({ mint: world.mint, principal: { id: "alice", tenants: ["acme"] }, id: "s1", requestId: "login-1" });
    expect(session.principal).toMatchObject({ principal: "alice", tenants: ["acme"], requestId: "login-1", issuer: "world" });
    await dispatcherFor(world).call(world.readFile, { path: "/srv/uploads/notes.txt" }, session.capability);
    expect(world.sink.toolEvents()[0]?.subject).toMatchObject({ sessionId: "s1", taskId: null, mint: { principal: "alice", requestId: "login-1" } });
  });

  it("revokes everything derived from it when closed, re-minted capabilities included", () => {
    const world = createWorld();
    const session = openSession({ mint: world.mint, principal: { id: "alice", tenants: ["acme"] } });
    const derived = narrow(session.capability, { fs: [{ path: "/srv/uploads", ops: ["read"] }] });
    const fresh = session.remint({ requestId: "step-up" });
    expect(fresh.mint.requestId).toBe("step-up");
    expect(fresh.lineage[0]?.id).not.toBe(session.capability.lineage[0]?.id);
    session.close("user logged out");
    expect(session.closed).toBe(true);
    const read = { action: "fs.read", path: "/srv/uploads/a", tenant: "acme" } as const;
    expect(check(derived, read)).toMatchObject({ code: "ERR_REVOKED", reason: expect.stringContaining("user logged out") as string });
    expect(check(fresh, read)).toMatchObject({ code: "ERR_REVOKED" });
    expect(() => session.remint()).toThrow(SessionClosed);
    session.close();
  });

  it("re-mints under the mint's current policy, which may now refuse", () => {
    let allowed = true;
    const mint = createMint({ issuer: "t", policy: () => (allowed ? { tools: ["x"] } : null) });
    const session = openSession({ mint, principal: { id: "alice" } });
    allowed = false;
    expect(() => session.remint()).toThrow(CapabilityDenied);
  });

  it("refuses a principal the policy refuses, and a bad session id", () => {
    const world = createWorld();
    expect(() => openSession({ mint: world.mint, principal: { id: "mallory" } })).toThrow(CapabilityDenied);
    expect(() => openSession({ mint: world.mint, principal: { id: "alice" }, id: "" })).toThrow(InvalidInput);
  });

  it("can authenticate through the mint's authenticator", async () => {
    const mint = createMint<{ token: string }>({
      issuer: "t",
      policy: (p) => ({ tools: [`hello_${p.id}`] }),
      authenticator: ({ token }) => {
        if (token !== "secret") throw new CapabilityDenied("bad token", { capabilityId: "", link: 0, linkId: "", rule: "auth", because: "bad token" });
        return { id: "alice" };
      },
    });
    const session = await authenticateSession({ mint, incoming: { token: "secret" }, id: "s2" });
    expect(session.principal.principal).toBe("alice");
    await expect(authenticateSession({ mint, incoming: { token: "nope" } })).rejects.toThrow("bad token");
  });
});
