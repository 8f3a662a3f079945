import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelFromEnvironment } from "../../eval/harness/model.ts";
import { runSuite } from "../../eval/harness/suite-run.ts";
import { workspace } from "../../eval/suites/workspace.ts";

/*
 * The evaluation with a real model, against a stand-in OpenAI-compatible
 * endpoint on 127.0.0.1 that plays a model: it reads the file the task
 * names, then answers from what the tool returned. What matters here is the
 * plumbing: the endpoint is asked through the AI SDK's provider, it is told
 * the application's context and shown only the tools the task's capability
 * reaches, and its runs are reported beside the scripted worst case's.
 */

interface ChatRequest {
  readonly model: string;
  readonly messages: readonly { readonly role: string; readonly content: unknown }[];
  readonly tools?: readonly { readonly function: { readonly name: string } }[];
}

const seen: ChatRequest[] = [];
let server: Server;
let baseURL = "";

const completion = (message: Record<string, unknown>, finish: string) => ({
  id: `c-${String(seen.length)}`,
  object: "chat.completion",
  created: 0,
  model: "stand-in",
  choices: [{ index: 0, message: { role: "assistant", ...message }, finish_reason: finish }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      const request = JSON.parse(body) as ChatRequest;
      seen.push(request);
      const tool = request.messages.findLast((m) => m.role === "tool");
      const reply =
        tool === undefined
          ? completion({ content: null, tool_calls: [{ id: "call-1", type: "function", function: { name: "read_file", arguments: JSON.stringify({ path: "shared/from-bob.txt" }) } }] }, "tool_calls")
          : completion({ content: `The deadline is ${/deadline for the Q4 report is ([A-Z][a-z]+ \d+)/.exec(JSON.stringify(tool.content))?.[1] ?? "unknown"}.` }, "stop");
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseURL = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}/v1`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
});

describe("the evaluation with a real model", () => {
  it("is off unless both the endpoint and the model are named", async () => {
    expect(await modelFromEnvironment({})).toBeNull();
    await expect(modelFromEnvironment({ AGENTCAP_EVAL_MODEL: "m" })).rejects.toThrow(/AGENTCAP_EVAL_BASE_URL/);
    await expect(modelFromEnvironment({ AGENTCAP_EVAL_BASE_URL: "http://127.0.0.1:1/v1" })).rejects.toThrow(/AGENTCAP_EVAL_MODEL/);
  });

  it("runs the tasks with the model, told the context and shown only the task's tools, reported beside the scripted runs", async () => {
    const model = await modelFromEnvironment({ AGENTCAP_EVAL_BASE_URL: baseURL, AGENTCAP_EVAL_MODEL: "stand-in" });
    if (model === null) throw new Error("no model");
    const report = await runSuite(workspace, { userTasks: ["ws-bob-deadline"], injectionTasks: ["ws-exfil-email"], modes: ["agentcap"], model });
    expect(Object.keys(report.modes)).toEqual(["agentcap", "agentcap · stand-in"]);
    expect(report.runs.map((r) => r.agent)).toEqual(["scripted", "scripted", "stand-in", "stand-in"]);
    const withModel = report.modes["agentcap · stand-in"];
    expect(withModel?.utilityWithoutAttack).toEqual({ count: 1, of: 1 });
    expect(withModel?.attackSuccess).toEqual({ count: 0, of: 1 });
    expect(report.runs.filter((r) => r.agent === "stand-in").map((r) => r.answer)).toEqual(["The deadline is December 12.", "The deadline is December 12."]);
    const first = seen[0];
    expect(first?.model).toBe("stand-in");
    expect(JSON.stringify(first?.messages)).toContain("You are Alice's assistant");
    // The task is "read this file": its capability reaches read_file, and request_access is the application's route to the Governor.
    expect(first?.tools?.map((t) => t.function.name).sort()).toEqual(["read_file", "request_access"]);
  });
});
