import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { requestIds, RunningRequests } from "../../src/mcp/running-requests.ts";

/** Stands in for a response: only its close event matters here. */
const response = () => new EventEmitter() as unknown as ServerResponse;

describe("the requests of a session under way, by id", () => {
  it("reads the ids of requests only: not of notifications, responses, or ids JSON-RPC does not allow", () => {
    expect(requestIds({ jsonrpc: "2.0", id: 1, method: "tools/list" })).toEqual([1]);
    expect(requestIds({ jsonrpc: "2.0", method: "notifications/initialized" })).toEqual([]);
    expect(requestIds({ jsonrpc: "2.0", id: 2, result: {} })).toEqual([]);
    expect(requestIds([{ id: "a", method: "x" }, { method: "y" }, { id: 3, method: "z" }, null, 7])).toEqual(["a", 3]);
    expect(requestIds({ id: { nested: true }, method: "x" })).toEqual([]);
    expect(requestIds(Object.create({ id: 5, method: "inherited" }) as unknown)).toEqual([]);
  });

  it("refuses an id already under way, or repeated in one body, until the response that claimed it closes; 1 and \"1\" differ", () => {
    const running = new RunningRequests();
    const first = response();
    expect(running.claim([1], first)).toBeNull();
    expect(running.claim([1], response())).toBe(1);
    expect(running.claim(["1"], response())).toBeNull();
    expect(running.claim([2, 2], response())).toBe(2);
    // A refused body claims nothing: 2 is still free.
    expect(running.claim([2], response())).toBeNull();
    (first as unknown as EventEmitter).emit("close");
    expect(running.claim([1], response())).toBeNull();
  });
});
