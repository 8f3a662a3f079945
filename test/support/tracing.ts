import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace";

/*
 * An application's tracing, as the OpenTelemetry SDK sets it up: a tracer
 * provider registered globally that keeps every finished span in memory,
 * and, when asked, the AsyncLocalStorage context manager a Node application
 * registers (NodeSDK does) so that active spans follow async calls.
 */

export interface RecordedSpans {
  /** Every span finished since the last reset, in the order they ended. */
  spans(): ReadableSpan[];
  /** The one finished span named `name`; throws when there is none or more than one. */
  one(name: string): ReadableSpan;
  reset(): void;
  /** Unregisters the provider (and context manager) and shuts the provider down. */
  stop(): Promise<void>;
}

export function recordSpans(options: { readonly contextManager?: boolean } = {}): RecordedSpans {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  if (!trace.setGlobalTracerProvider(provider)) throw new Error("a tracer provider is registered already");
  const manager = options.contextManager === true ? new AsyncLocalStorageContextManager().enable() : null;
  if (manager !== null) context.setGlobalContextManager(manager);
  const spans = () => exporter.getFinishedSpans();
  return {
    spans,
    one: (name) => {
      const found = spans().filter((s) => s.name === name);
      if (found.length !== 1) throw new Error(`expected one span named ${name}, found ${found.length} among ${spans().map((s) => s.name).join(", ")}`);
      return found[0] as ReadableSpan;
    },
    reset: () => {
      exporter.reset();
    },
    stop: async () => {
      trace.disable();
      if (manager !== null) context.disable();
      await provider.shutdown();
    },
  };
}

/** Whether `child` is a direct child of `parent`, in the same trace. */
export function isChildOf(child: ReadableSpan, parent: ReadableSpan): boolean {
  const own = parent.spanContext();
  return child.parentSpanContext?.spanId === own.spanId && child.spanContext().traceId === own.traceId;
}

/** Everything an exporter could send about `spans`, as text: names, attributes, events, links, status, resource and scope. */
export function exportedText(spans: readonly ReadableSpan[]): string {
  return JSON.stringify(
    spans.map((s) => ({
      name: s.name,
      attributes: s.attributes,
      events: s.events,
      links: s.links,
      status: s.status,
      resource: s.resource.attributes,
      scope: s.instrumentationScope,
    })),
  );
}
