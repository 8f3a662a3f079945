import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { followServer, requestIds, RunningRequests } from "../../src/mcp/running-requests.ts";

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

describe("ids the session's server took", () => {
  it("stay claimed past their response's close until the server answers them; ids it never took are freed at close", () => {
    const running = new RunningRequests();
    const gone = response();
    expect(running.claim([1, 2], gone)).toBeNull();
    // The server took 1 (the transport handed it over); 2 it never saw (the transport refused the body, say).
    running.taken(1);
    (gone as unknown as EventEmitter).emit("close");
    expect(running.claim([1], response())).toBe(1);
    expect(running.claim([2], response())).toBeNull();
    running.done(1);
    expect(running.claim([1], response())).toBeNull();
  });

  it("an answer written before the response closes frees the id at close, not before; a later claim is not freed by an earlier close", () => {
    const running = new RunningRequests();
    const first = response();
    expect(running.claim([7], first)).toBeNull();
    running.taken(7);
    running.done(7);
    expect(running.claim([7], response())).toBe(7);
    (first as unknown as EventEmitter).emit("close");
    const second = response();
    expect(running.claim([7], second)).toBeNull();
    // A stray close of the first response again, or an answer for an id nobody claimed, frees nothing.
    (first as unknown as EventEmitter).emit("close");
    running.done(8);
    expect(running.claim([7], response())).toBe(7);
    expect(running.size).toBe(1);
  });

  it("odd ids: -0 is 0 (as the SDK's Map has it), 1 and \"1\" and 1.5 and huge numbers are each their own, and none leaks once closed", () => {
    const running = new RunningRequests();
    const res = response();
    expect(running.claim([0], res)).toBeNull();
    expect(running.claim([-0], response())).toBe(-0);
    expect(requestIds(JSON.parse('[{"id":-0,"method":"a"},{"id":1e400,"method":"b"},{"id":1.5,"method":"c"},{"id":null,"method":"d"},{"id":"","method":"e"}]'))).toEqual([-0, Infinity, 1.5, ""]);
    const odd = response();
    expect(running.claim([Infinity, 1.5, "", "0", Number.MAX_SAFE_INTEGER + 2], odd)).toBeNull();
    (odd as unknown as EventEmitter).emit("close");
    (res as unknown as EventEmitter).emit("close");
    expect(running.size).toBe(0);
  });
});

describe("following the session's server", () => {
  it("takes the requests the transport hands over, frees them on their answer, and on a cancellation the SDK's server honours", async () => {
    const running = new RunningRequests();
    const seen: unknown[] = [];
    const sent: unknown[] = [];
    const transport = {
      onmessage: (message: never) => {
        seen.push(message);
      },
      send: (message: never) => {
        sent.push(message);
        return Promise.resolve();
      },
    };
    followServer(transport, running);
    const deliver = transport.onmessage as (message: unknown) => void;
    const res = response();
    expect(running.claim([1, 0, 5], res)).toBeNull();
    for (const id of [1, 0, 5]) deliver({ jsonrpc: "2.0", id, method: "tools/call" });
    (res as unknown as EventEmitter).emit("close");
    expect(seen).toHaveLength(3);
    // A response the client sends to a server request, and a notification, take nothing.
    deliver({ jsonrpc: "2.0", id: 9, result: {} });
    // The SDK's server cancels no request named 0: it will still answer it, so 0 stays claimed.
    deliver({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 0 } });
    deliver({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 5 } });
    expect(running.claim([0], response())).toBe(0);
    expect(running.claim([5], response())).toBeNull();
    // A server request or notification frees nothing; an answer frees its id.
    await (transport.send as (message: unknown) => Promise<void>)({ jsonrpc: "2.0", id: 1, method: "elicitation/create" });
    expect(running.claim([1], response())).toBe(1);
    await (transport.send as (message: unknown) => Promise<void>)({ jsonrpc: "2.0", id: 1, result: {} });
    await (transport.send as (message: unknown) => Promise<void>)({ jsonrpc: "2.0", id: 0, error: { code: -1, message: "x" } });
    await Promise.resolve();
    expect(running.claim([1, 0], response())).toBeNull();
    expect(sent).toHaveLength(3);
  });
});
