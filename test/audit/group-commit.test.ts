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

  it("flushes a deferred item on its own on the next turn when nothing else comes", async () => {
    const batches: string[][] = [];
    const commit = new GroupCommit<string>((items) => {
      batches.push([...items]);
      return Promise.resolve(items.map(() => null));
    }, 100);
    commit.defer("alone");
    await new Promise((resolve) => setImmediate(resolve));
    await commit.idle();
    expect(batches).toEqual([["alone"]]);
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
