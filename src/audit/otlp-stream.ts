/**
 * A sink that ships the audit log to an OpenTelemetry collector as it is
 * written: each entry (sequence number and leaf) and each signed checkpoint
 * becomes one OTLP/HTTP JSON log record, POSTed in batches. It never holds
 * up or fails a call: lines wait in a bounded queue, a failed request is
 * retried with exponential backoff, and when the queue is full the oldest
 * lines not in a request under way are dropped and counted. What the
 * collector keeps can be checked with `verifyStream` and the public key
 * alone, so a drop shows as a gap.
 */
import { InvalidInput } from "../kernel/index.js";
import { otlpRequest, type StreamLine } from "./otlp.js";

/** Where and how the stream ships. */
export interface OtlpStreamOptions {
  /** The collector's OTLP/HTTP logs endpoint, such as http://127.0.0.1:4318/v1/logs. */
  readonly endpoint: string;
  /** Extra request headers, such as an authorization header the collector asks for. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Most lines held while the collector is slow or down (default 10,000); beyond it the oldest waiting lines are dropped and counted. */
  readonly maxQueue?: number;
  /** Most lines per request (default 512). */
  readonly maxBatch?: number;
  /** First retry delay after a failed request, doubled per failure up to `maxBackoffMs` (defaults 100 and 30,000 ms). */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long one request may take (default 10,000 ms). */
  readonly timeoutMs?: number;
}

/** What the stream has done. */
export interface OtlpStreamStats {
  /** Lines waiting to be sent. */
  readonly queued: number;
  /** Lines the collector accepted. */
  readonly sent: number;
  /** Lines dropped because the queue was full. */
  readonly dropped: number;
  /** Requests that failed (each retried while its lines are queued). */
  readonly failedRequests: number;
  /** Why the last request failed, or null once one succeeded after it. */
  readonly lastError: string | null;
}

/** Receives the log's lines as they are written; the audit store calls `push`, which never throws or waits. */
export interface AuditStream {
  push(lines: readonly StreamLine[]): void;
}

/** An OTLP log stream: push lines, read its stats, close it (one last attempt to send what is queued). */
export interface OtlpLogStream extends AuditStream {
  stats(): OtlpStreamStats;
  /** Resolves once the queue is empty, or after one failed attempt to empty it. */
  flush(): Promise<void>;
  /** Flushes, then stops: later lines are dropped and counted. */
  close(): Promise<void>;
}

function whole(value: number | undefined, fallback: number, name: string, min: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) throw new InvalidInput(`${name} must be a whole number, at least ${String(min)}`);
  return v;
}

/** Opens a stream to `options.endpoint`; InvalidInput for a URL that is not http(s) or bad limits. */
export function otlpLogStream(options: OtlpStreamOptions): OtlpLogStream {
  let url: URL;
  try {
    url = new URL(options.endpoint);
  } catch {
    throw new InvalidInput(`the OTLP endpoint ${JSON.stringify(options.endpoint)} is not a URL; give the collector's logs endpoint, such as http://127.0.0.1:4318/v1/logs`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new InvalidInput(`the OTLP endpoint must be an http or https URL, not ${url.protocol}`);
  const maxQueue = whole(options.maxQueue, 10_000, "maxQueue", 1);
  const maxBatch = whole(options.maxBatch, 512, "maxBatch", 1);
  const minBackoff = whole(options.minBackoffMs, 100, "minBackoffMs", 1);
  const maxBackoff = whole(options.maxBackoffMs, 30_000, "maxBackoffMs", minBackoff);
  const timeout = whole(options.timeoutMs, 10_000, "timeoutMs", 1);
  const headers = { ...options.headers, "content-type": "application/json" };

  const queue: StreamLine[] = [];
  let sent = 0;
  let dropped = 0;
  let failedRequests = 0;
  let lastError: string | null = null;
  let backoff = 0;
  let running: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  /** Lines at the head of the queue in the request under way: an overflow drops the oldest lines after them. */
  let inFlight = 0;

  /** Sends one batch from the head of the queue; true when the collector took it. */
  const sendOne = async (): Promise<boolean> => {
    const batch = queue.slice(0, Math.min(maxBatch, maxQueue));
    inFlight = batch.length;
    try {
      const response = await fetch(url, { method: "POST", headers, body: otlpRequest(batch, Date.now()), signal: AbortSignal.timeout(timeout) });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`the collector answered ${String(response.status)}`);
    } catch (e) {
      failedRequests += 1;
      lastError = e instanceof Error ? e.message : String(e);
      return false;
    } finally {
      inFlight = 0;
    }
    queue.splice(0, batch.length);
    sent += batch.length;
    lastError = null;
    return true;
  };

  /** Sends until the queue is empty or a request fails (then retries after the backoff). */
  const drain = async (once: boolean): Promise<void> => {
    while (queue.length > 0) {
      if (await sendOne()) {
        backoff = 0;
        continue;
      }
      backoff = backoff === 0 ? minBackoff : Math.min(maxBackoff, backoff * 2);
      if (!once && !closed) {
        timer = setTimeout(() => {
          timer = null;
          start();
        }, backoff);
        timer.unref();
      }
      return;
    }
  };

  const flush = async (): Promise<void> => {
    if (running !== null) await running;
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    await drain(true);
    if (!closed) start();
  };

  const start = (): void => {
    if (running !== null || timer !== null || queue.length === 0) return;
    running = drain(false).finally(() => {
      running = null;
      // Lines pushed while the last request was answered wait for no one.
      if (timer === null && !closed) start();
    });
  };

  return Object.freeze({
    push(lines: readonly StreamLine[]): void {
      if (closed) {
        dropped += lines.length;
        return;
      }
      queue.push(...lines);
      if (queue.length > maxQueue) {
        dropped += queue.length - maxQueue;
        queue.splice(inFlight, queue.length - maxQueue);
      }
      // The request goes out after the current turn, so one batch carries what this turn appended.
      if (running === null && timer === null) queueMicrotask(start);
    },
    stats: (): OtlpStreamStats => ({ queued: queue.length, sent, dropped, failedRequests, lastError }),
    flush,
    async close(): Promise<void> {
      if (closed) return;
      await flush();
      closed = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      dropped += queue.length;
      queue.length = 0;
    },
  });
}
