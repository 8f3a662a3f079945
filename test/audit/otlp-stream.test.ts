import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpointKey, memoryCheckpointSink } from "../../src/audit/checkpoint.ts";
import { openAuditStore } from "../../src/audit/open.ts";
import { linesFromOtlp } from "../../src/audit/otlp.ts";
import { otlpLogStream } from "../../src/audit/otlp-stream.ts";
import { verifyStream } from "../../src/audit/stream-verifier.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { eventFor, world } from "./fixtures.ts";

/** A collector on 127.0.0.1: keeps every record body it accepts, in arrival order, answers 503 while `down`, and answers nothing until `held` settles. */
function collector() {
  const bodies: string[] = [];
  const seqAttributes: string[] = [];
  const state: { down: boolean; requests: number; held: Promise<void> | null } = { down: false, requests: 0, held: null };
  const server: Server = createServer((req, res) => {
    let text = "";
    req.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    req.on("end", () => void answer());
    const answer = async (): Promise<void> => {
      state.requests += 1;
      if (state.held !== null) await state.held;
      if (state.down || req.url !== "/v1/logs" || req.headers["content-type"] !== "application/json") {
        res.writeHead(503).end();
        return;
      }
      bodies.push(...linesFromOtlp([text]));
      const parsed = JSON.parse(text) as { resourceLogs: { scopeLogs: { logRecords: { attributes: { key: string; value: { intValue?: string } }[] }[] }[] }[] };
      for (const r of parsed.resourceLogs[0]?.scopeLogs[0]?.logRecords ?? []) {
        const seq = r.attributes.find((a) => a.key === "agentcap.seq")?.value.intValue;
        if (seq !== undefined) seqAttributes.push(seq);
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    };
  });
  return { server, bodies, seqAttributes, state };
}

const key = generateCheckpointKey("audit.test/stream");

/** The sequence numbers a verifier's "missing: 2-4, 9" names. */
function missingIds(reason: string): number[] {
  const list = reason.slice(reason.lastIndexOf(": ") + 2);
  return list.split(", ").flatMap((part) => {
    const [from, to = from] = part.split("-").map(Number) as [number, number?];
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
}

describe("streaming the audit log to an OpenTelemetry collector", () => {
  const c = collector();
  let endpoint = "";
  beforeAll(async () => {
    await new Promise<void>((resolve) => c.server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${String((c.server.address() as AddressInfo).port)}/v1/logs`;
  });
  afterAll(async () => {
    await new Promise((resolve) => c.server.close(resolve));
  });

  const open = async (maxQueue?: number) => {
    const stream = otlpLogStream({ endpoint, minBackoffMs: 5, maxBackoffMs: 20, ...(maxQueue === undefined ? {} : { maxQueue }) });
    const store = await openAuditStore({ kind: "sqlite", path: ":memory:", stream, checkpoints: { key: key.signerKey, sink: memoryCheckpointSink(), everyEntries: 1_000_000 } });
    const { searchTool } = world();
    const write = async (n: number) => {
      for (let i = 0; i < n; i++) await store.write(eventFor(searchTool, { action: "tool.call", tool: "search" }));
    };
    return { stream, store, write };
  };

  it("ships every entry with its sequence number, and every checkpoint, as they are written; the collector's copy verifies, and an edit or a gap is found", async () => {
    c.bodies.length = 0;
    const { stream, store, write } = await open();
    await write(12);
    await store.checkpoint();
    await stream.flush();
    expect(stream.stats()).toMatchObject({ queued: 0, sent: 13, dropped: 0 });
    expect(c.seqAttributes.slice(-12)).toEqual(Array.from({ length: 12 }, (_, i) => String(i + 1)));
    expect(verifyStream(c.bodies, key.verifierKey)).toEqual({ ok: true, value: { checkpoint: { origin: "audit.test/stream", size: 12 }, uncovered: 0 } });
    const edited = c.bodies.map((b, i) => (i === 3 ? b.replace("search", "sEarch") : b));
    expect(verifyStream(edited, key.verifierKey)).toMatchObject({ ok: false, reason: expect.stringMatching(/do not hash to the root/) as unknown });
    expect(verifyStream(c.bodies.filter((_, i) => i !== 5), key.verifierKey)).toMatchObject({ ok: false, reason: expect.stringMatching(/1 of the 12 entries .* missing: 6$/) as unknown });
    expect(verifyStream(c.bodies, generateCheckpointKey("audit.test/stream").verifierKey).ok).toBe(false);
    await store.close();
    await stream.close();
  });

  it("while the collector is down, calls go on and lines wait; once it is back nothing within the queue bound is lost, and what overflowed is dropped and counted", async () => {
    c.bodies.length = 0;
    const { stream, store, write } = await open(50);
    c.state.down = true;
    await write(30);
    await stream.flush();
    expect(stream.stats()).toMatchObject({ queued: 30, sent: 0, dropped: 0, lastError: "the collector answered 503" });
    expect(stream.stats().failedRequests).toBeGreaterThan(0);
    c.state.down = false;
    await store.checkpoint();
    await stream.flush();
    expect(stream.stats()).toMatchObject({ queued: 0, sent: 31, dropped: 0, lastError: null });
    expect(verifyStream(c.bodies, key.verifierKey)).toMatchObject({ ok: true, value: { checkpoint: { size: 30 } } });

    c.state.down = true;
    await write(70);
    await store.checkpoint();
    await stream.flush();
    // 71 lines (70 entries and a checkpoint) for a queue of 50: the 21 oldest went.
    expect(stream.stats()).toMatchObject({ queued: 50, dropped: 21 });
    c.state.down = false;
    await stream.flush();
    expect(stream.stats()).toMatchObject({ queued: 0, sent: 81, dropped: 21 });
    // Which 21 went depends on the retries under way as they overflowed (lines in a request under way are kept); the gap shows all of them.
    const verdict = verifyStream(c.bodies, key.verifierKey);
    expect(verdict).toMatchObject({ ok: false, reason: expect.stringMatching(/^21 of the 100 entries the latest checkpoint covers are missing: [\d, -]+$/) as unknown });
    const missing = verdict.ok ? [] : missingIds(verdict.reason);
    expect(missing).toHaveLength(21);
    expect(missing.every((seq) => seq > 30)).toBe(true);
    await store.close();
    await stream.close();
  });

  it("an overflow keeps the lines of the request under way and drops the oldest waiting ones", async () => {
    c.bodies.length = 0;
    let answer = (): void => undefined;
    c.state.held = new Promise<void>((resolve) => (answer = resolve));
    const { stream, store, write } = await open(4);
    await write(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await write(9);
    expect(stream.stats()).toMatchObject({ queued: 4, dropped: 6 });
    c.state.held = null;
    answer();
    await stream.flush();
    await store.checkpoint();
    await stream.flush();
    expect(stream.stats()).toMatchObject({ queued: 0, sent: 5, dropped: 6 });
    expect(verifyStream(c.bodies, key.verifierKey)).toMatchObject({ ok: false, reason: "6 of the 10 entries the latest checkpoint covers are missing: 2-7" });
    await store.close();
    await stream.close();
  });

  it("refuses an endpoint that is not an http URL, and bad limits", () => {
    expect(() => otlpLogStream({ endpoint: "collector:4318" })).toThrow(InvalidInput);
    expect(() => otlpLogStream({ endpoint: "file:///tmp/x" })).toThrow(/http or https/);
    expect(() => otlpLogStream({ endpoint, maxQueue: 0 })).toThrow(/maxQueue/);
  });
});
