/**
 * Reads a JSON request body for the gateway, bounded in size, before the MCP
 * SDK's transport sees the request (it is then handed the parsed value). A
 * body declared larger than the limit is refused without reading a byte; one
 * that grows past it is refused as soon as it does, and the rest is
 * discarded as it arrives. How long the body may take is bounded by the
 * server's request timeout, which ends the connection (see http.ts).
 */
import type { IncomingMessage } from "node:http";

/** What became of a body. `gone`: the connection ended first (timed out or closed), so there is no one to answer. */
export type BodyResult =
  | { readonly kind: "json"; readonly value: unknown }
  | { readonly kind: "too-large" }
  | { readonly kind: "malformed" }
  | { readonly kind: "gone" };

/** Reads `req`'s body as JSON, at most `maxBytes` bytes of it. Never rejects. */
export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBytes) return Promise.resolve({ kind: "too-large" });
  return new Promise<BodyResult>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (result: BodyResult) => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      resolve(result);
    };
    req.on("data", (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > maxBytes) settle({ kind: "too-large" });
      else chunks.push(chunk);
    });
    req.on("end", () => {
      if (settled) return;
      try {
        settle({ kind: "json", value: JSON.parse(Buffer.concat(chunks, size).toString("utf8")) as unknown });
      } catch {
        settle({ kind: "malformed" });
      }
    });
    req.on("error", () => {
      settle({ kind: "gone" });
    });
    req.on("close", () => {
      settle({ kind: "gone" });
    });
  });
}
