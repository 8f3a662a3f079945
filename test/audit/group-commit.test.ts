import { describe, expect, it } from "vitest";
import { GroupCommit } from "../../src/audit/group-commit.ts";

/*
 * Group commit: one flush for concurrent writers, each settling with its own
 * transaction; deferred items (outcomes) ride with the next batch and survive
 * a failed one.
 */

describe("group commit", () => {
  it("batches concurrent submissions, and a deferred item joins the next batch instead of a flush of its own", async () => {
    const batches: string[][] = [];
    const commit = new GroupCommit<string>((items) => {
      batches.push([...items]);
      return Promise.resolve(items.map(() => null));
    }, 100);
    await Promise.all([commit.submit("a"), commit.submit("b")]);
    commit.defer("outcome-of-a");
    await commit.submit("c");
    expect(batches).toEqual([["a", "b"], ["outcome-of-a", "c"]]);
  });

  it("batches writers that submit from separate callbacks ready in the same turn of the event loop (requests of concurrent calls), even with a synchronous engine", async () => {
    const batches: string[][] = [];
    // Like better-sqlite3: the whole transaction runs before the flush returns.
    const commit = new GroupCommit<string>((items) => {
      batches.push([...items]);
      return Promise.resolve(items.map(() => null));
    }, 100);
    const submitted = await new Promise<Promise<void>[]>((resolve) => {
      const all: Promise<void>[] = [];
      setImmediate(() => all.push(commit.submit("request-1")));
      setImmediate(() => all.push(commit.submit("request-2")));
      setImmediate(() => {
        all.push(commit.submit("request-3"));
        resolve(all);
      });
    });
    await Promise.all(submitted);
    expect(batches).toEqual([["request-1", "request-2", "request-3"]]);
  });

  it("flushes a lone writer without waiting for a timer", async () => {
    const batches: string[][] = [];
    const commit = new GroupCommit<string>((items) => {
      batches.push([...items]);
      return Promise.resolve(items.map(() => null));
    }, 100, 10_000);
    const done = commit.submit("alone");
    await new Promise((resolve) => setImmediate(resolve));
    await done;
    expect(batches).toEqual([["alone"]]);
  });

  it("flushes a deferred item on its own once it has waited its time with nothing else coming", async () => {
    const batches: string[][] = [];
    const commit = new GroupCommit<string>((items) => {
      batches.push([...items]);
      return Promise.resolve(items.map(() => null));
    }, 100, 20);
    commit.defer("alone");
    await new Promise((resolve) => setImmediate(resolve));
    // Not on the next turn: a writer coming soon takes it along.
    expect(batches).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    // The flush runs at the end of the turn its time came in, which a stalled process may share with this timer.
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([["alone"]]);
  });

  it("keeps a deferred item that arrives while a batch is written for the next writer, not a transaction of its own", async () => {
    const batches: string[][] = [];
    const commit = new GroupCommit<string>((items) => {
      batches.push([...items]);
      return Promise.resolve(items.map(() => null));
    }, 100, 10_000);
    // The caller's outcome is deferred as soon as its intent is committed, while the drain still runs.
    await commit.submit("intent-1").then(() => {
      commit.defer("outcome-1");
    });
    await new Promise((resolve) => setImmediate(resolve));
    await commit.submit("intent-2");
    expect(batches).toEqual([["intent-1"], ["outcome-1", "intent-2"]]);
    commit.defer("outcome-2");
    await commit.idle();
    expect(batches).toEqual([["intent-1"], ["outcome-1", "intent-2"], ["outcome-2"]]);
  });

  it("rejects the waiters of a failed batch and tries its deferred items again with the next one", async () => {
    const batches: string[][] = [];
    let fail = true;
    const commit = new GroupCommit<string>((items) => {
      batches.push([...items]);
      if (fail) return Promise.reject(new Error("database is locked"));
      return Promise.resolve(items.map(() => null));
    }, 100);
    commit.defer("outcome");
    const failed = commit.submit("intent-1");
    await expect(failed).rejects.toThrow("database is locked");
    fail = false;
    await commit.submit("intent-2");
    expect(batches).toEqual([["outcome", "intent-1"], ["outcome", "intent-2"]]);
  });

  it("gives a deferred item one more try when the store is closed after a failure", async () => {
    const batches: string[][] = [];
    let fail = true;
    const commit = new GroupCommit<string>((items) => {
      batches.push([...items]);
      if (fail) return Promise.reject(new Error("busy"));
      return Promise.resolve(items.map(() => null));
    }, 100);
    commit.defer("outcome");
    await expect(commit.submit("intent")).rejects.toThrow("busy");
    fail = false;
    await commit.idle();
    expect(batches).toEqual([["outcome", "intent"], ["outcome"]]);
  });
});
