import { INVALID_SPAN_CONTEXT, ProxyTracerProvider, trace, type Tracer } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createMint } from "../../src/index.ts";
import { createDispatcher, defineTool } from "../../src/tools/index.ts";
import { memorySink } from "./memory-sink.ts";

/*
 * With no tracer provider registered, a call starts no span at all (tracing.ts
 * `noProvider`). Whatever the application does with the global provider
 * later (registers one, disables it, registers another, registers one that
 * records nothing, or hands the API an unusual delegate) is honoured from
 * the next call on, and never makes a call fail.
 */
const mint = createMint({ issuer: "tracing-provider", policy: () => ({ tools: ["ping"] }) });
const ping = defineTool({ name: "ping", description: "Answers.", input: z.object({}), needs: () => [] }, () => "pong");
const dispatcher = createDispatcher({ tools: [ping], audit: memorySink() });
const call = () => dispatcher.call("ping", {}, mint.issue({ id: "u" }));

function recorder() {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  return { provider, count: () => exporter.getFinishedSpans().length };
}

afterAll(() => {
  trace.disable();
});

describe("the global tracer provider, as it changes between calls", () => {
  it("none, then one, then none again, then another: each call follows the provider registered when it starts", async () => {
    trace.disable();
    await expect(call()).resolves.toBe("pong");

    const first = recorder();
    expect(trace.setGlobalTracerProvider(first.provider)).toBe(true);
    await expect(call()).resolves.toBe("pong");
    const afterFirst = first.count();
    expect(afterFirst).toBeGreaterThan(0);

    trace.disable();
    await expect(call()).resolves.toBe("pong");
    expect(first.count()).toBe(afterFirst);

    const second = recorder();
    expect(trace.setGlobalTracerProvider(second.provider)).toBe(true);
    await expect(call()).resolves.toBe("pong");
    expect(second.count()).toBe(afterFirst);
    expect(first.count()).toBe(afterFirst);

    // A second registration without disabling is refused by the API: the first registered stays the one used.
    const third = recorder();
    expect(trace.setGlobalTracerProvider(third.provider)).toBe(false);
    await expect(call()).resolves.toBe("pong");
    expect(third.count()).toBe(0);
    expect(second.count()).toBe(2 * afterFirst);
    trace.disable();
  });

  it("a provider that records nothing, or a proxy with no delegate of its own, or one delegating to a recorder: calls still answer", async () => {
    const nothing = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    const tracer = { startSpan: () => nothing, startActiveSpan: () => undefined } as unknown as Tracer;
    const silent = { getTracer: () => tracer };
    trace.disable();
    // A provider of the application's whose spans record nothing.
    expect(trace.setGlobalTracerProvider(silent)).toBe(true);
    await expect(call()).resolves.toBe("pong");
    trace.disable();

    // A proxy the application made and registered, delegating to nothing: the API answers with its no-op provider.
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- the class tracing.ts asks of: an application could register one of its own
    expect(trace.setGlobalTracerProvider(new ProxyTracerProvider())).toBe(true);
    await expect(call()).resolves.toBe("pong");
    trace.disable();

    // A proxy delegating to a recording provider: it records.
    const inner = recorder();
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- as above
    const proxy = new ProxyTracerProvider();
    proxy.setDelegate(inner.provider);
    expect(trace.setGlobalTracerProvider(proxy)).toBe(true);
    await expect(call()).resolves.toBe("pong");
    expect(inner.count()).toBeGreaterThan(0);
    trace.disable();
    await expect(call()).resolves.toBe("pong");
  });
});
