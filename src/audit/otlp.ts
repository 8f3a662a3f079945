/**
 * An audit export as OpenTelemetry logs (OTLP JSON, as the OTLP file
 * exporter writes it: one ExportLogsServiceRequest per line). Each log
 * record's body is one line of the JSON-lines export, unchanged, with its
 * sequence number as the attribute `agentcap.seq`: a collector or SIEM that
 * keeps the bodies in order keeps everything `verify-export` needs to check
 * them against the signed checkpoint with the public key alone.
 */
import { InvalidInput } from "../kernel/index.js";
import type { ExportLine } from "./proof-verifier.js";

/** Export lines per ExportLogsServiceRequest. */
export const OTLP_BATCH = 1000;

/**
 * One line of a streamed log, as the OTLP sink ships it while the log is
 * written: an entry with its sequence number and leaf (no proof yet: no
 * checkpoint covers it when it is written), or a signed checkpoint of the
 * log's head. `verifyStream` checks such lines with the public key alone.
 */
export type StreamLine = { readonly seq: number; readonly leaf: string } | { readonly checkpoint: string };

type Attribute = { readonly key: string; readonly value: { readonly stringValue: string } | { readonly intValue: string } };

function recordOf(line: ExportLine | StreamLine, observedNs: string): Record<string, unknown> {
  const kind = "seq" in line ? "entry" : "end" in line ? "end" : "checkpoint" in line ? "checkpoint" : "header";
  const attributes: Attribute[] = [{ key: "agentcap.export.kind", value: { stringValue: kind } }];
  if ("seq" in line) attributes.push({ key: "agentcap.seq", value: { intValue: String(line.seq) } });
  return { observedTimeUnixNano: observedNs, severityNumber: 9, severityText: "INFO", body: { stringValue: JSON.stringify(line) }, attributes };
}

/** One OTLP JSON ExportLogsServiceRequest holding `lines` in order. */
export function otlpRequest(lines: readonly (ExportLine | StreamLine)[], observedAtMs: number): string {
  const observedNs = `${String(Math.trunc(observedAtMs))}000000`;
  return JSON.stringify({
    resourceLogs: [
      {
        resource: { attributes: [{ key: "service.name", value: { stringValue: "agentcap-audit" } }] },
        scopeLogs: [{ scope: { name: "agentcap.audit.export" }, logRecords: lines.map((l) => recordOf(l, observedNs)) }],
      },
    ],
  });
}

/** True when `text` (one line of a file) is an OTLP JSON logs request rather than an export line. */
export function isOtlpLine(text: string): boolean {
  return text.startsWith('{"resourceLogs"');
}

/** The export lines an OTLP JSON logs file holds, in order; InvalidInput for a line that is not one of its requests. */
export function linesFromOtlp(requests: readonly string[]): string[] {
  const out: string[] = [];
  for (const [i, text] of requests.entries()) {
    if (text.trim() === "") continue;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new InvalidInput(`line ${String(i + 1)} of the OTLP export is not JSON`);
    }
    const resources = (data as { resourceLogs?: unknown } | null)?.resourceLogs;
    if (!Array.isArray(resources)) throw new InvalidInput(`line ${String(i + 1)} of the OTLP export is not an ExportLogsServiceRequest`);
    for (const r of resources as { scopeLogs?: { logRecords?: { body?: { stringValue?: unknown } }[] }[] }[]) {
      for (const s of r.scopeLogs ?? []) {
        for (const rec of s.logRecords ?? []) {
          const body = rec.body?.stringValue;
          if (typeof body !== "string") throw new InvalidInput(`a log record on line ${String(i + 1)} of the OTLP export has no string body`);
          out.push(body);
        }
      }
    }
  }
  return out;
}
