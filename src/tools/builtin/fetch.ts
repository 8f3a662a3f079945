import { z } from "zod";
import { HTTP_METHODS } from "../../kernel/index.js";
import type { HttpClient } from "../../resources/http/index.js";
import { defineBuiltinTool, type Tool } from "../define.js";
import { defined } from "../../kernel/internal.js";

const input = z.object({
  url: z.string().describe("Absolute http(s) URL."),
  method: z.enum(HTTP_METHODS).default("GET"),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.string().optional().describe("Request body, for methods other than GET and HEAD."),
});

/** What the model gets back: the status, the final URL, the content type, and the body as text. */
export interface FetchResult {
  readonly status: number;
  readonly url: string;
  readonly contentType: string | null;
  readonly body: string;
}

/** Options of the fetch tool. */
export interface FetchToolOptions {
  /** Default "fetch_url". */
  readonly name?: string;
}

/**
 * A tool that sends one HTTP request through the confined client. Its need
 * is that request, so the handler's capability allows this method on this
 * URL's origin and path and nothing else: a redirect elsewhere is denied,
 * since every hop is authorized again against the narrowed capability.
 */
export function fetchTool(http: HttpClient, options: FetchToolOptions = {}): Tool<z.input<typeof input>, FetchResult> {
  return defineBuiltinTool(
    {
      name: options.name ?? "fetch_url",
      description: "Send one HTTP request and return the status and the response body as text.",
      input,
      needs: ({ url, method }) => [{ action: "http.request", method, url }],
    },
    async (call, cap, ctx) => {
      const res = await http.request(cap, call.url, {
        method: call.method,
        ...defined({ headers: call.headers, body: call.body }),
        ...(ctx.tenant === null ? {} : { tenant: ctx.tenant }),
      });
      return { status: res.status, url: res.url, contentType: res.headers["content-type"] ?? null, body: new TextDecoder().decode(res.body) };
    },
  );
}
