/**
 * `npm run eval`: the adversarial evaluation. Every suite's user tasks are
 * run by the worst-case scripted agent without attack and with each
 * injection task planted in the data it reads, once holding the capability
 * the application's policy and the Governor give the task (agentcap) and
 * once holding the user's root capability (undefended). Prints the tables
 * and writes every run to a JSON file.
 *
 *   npm run eval                       # every suite; results in .agentcap/eval/results.json
 *   npm run eval -- --suite banking    # one suite (repeatable)
 *   npm run eval -- --out results.json
 *
 * With AGENTCAP_EVAL_BASE_URL and AGENTCAP_EVAL_MODEL (and AGENTCAP_EVAL_API_KEY
 * if the endpoint needs one) naming an OpenAI-compatible endpoint, every task
 * also runs with that model in both modes (`--model-only`: the model alone).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { injectionTable, summaryTable } from "./harness/report.ts";
import { MODEL_VARIABLES, modelFromEnvironment } from "./harness/model.ts";
import { runSuite, type SuiteReport } from "./harness/suite-run.ts";
import { suites } from "./suites/index.ts";

const { values } = parseArgs({
  options: { suite: { type: "string", multiple: true }, out: { type: "string", default: ".agentcap/eval/results.json" }, "model-only": { type: "boolean", default: false } },
});
const model = await modelFromEnvironment(process.env);
if (model === null && values["model-only"]) {
  console.error(`--model-only needs a model: set ${MODEL_VARIABLES.join(", ")}`);
  process.exit(2);
}
const chosen = values.suite === undefined ? suites : suites.filter((s) => values.suite?.includes(s.name));
const unknown = (values.suite ?? []).filter((n) => !suites.some((s) => s.name === n));
if (unknown.length > 0) {
  console.error(`no suite named ${unknown.join(", ")}; the suites are ${suites.map((s) => s.name).join(", ")}`);
  process.exit(2);
}

const reports: SuiteReport[] = [];
const started = performance.now();
for (const suite of chosen) {
  process.stderr.write(`${suite.name}: `);
  let n = 0;
  const report = await runSuite(suite, {
    ...(model === null ? {} : { model, scripted: !values["model-only"] }),
    onRun: () => {
      n += 1;
      if (n % 50 === 0) process.stderr.write(".");
    },
  });
  process.stderr.write(` ${String(report.runs.length)} runs\n`);
  reports.push(report);
}

const agents = model === null ? "" : `; and the model ${model.id}`;
console.log(`\nagentcap adversarial evaluation: a worst-case scripted agent obeys every injected instruction it reads${agents}\n`);
console.log(summaryTable(reports));
for (const r of reports) {
  console.log(`\n${r.suite}: ${r.description}`);
  console.log(injectionTable(r));
  const ran = (code: string) => Object.entries(r.toolCode).filter(([, c]) => c === code).map(([t]) => t);
  console.log(`tools run sandboxed: ${ran("sandboxed").join(", ") || "none"}; in this process: ${[...ran("trusted"), ...ran("in process")].join(", ") || "none"}`);
  for (const [mode, m] of Object.entries(r.modes)) {
    if (m.failedUserTasks.length > 0) console.log(`user tasks not done without attack (${mode}): ${m.failedUserTasks.join(", ")}`);
  }
}
mkdirSync(dirname(values.out), { recursive: true });
writeFileSync(values.out, `${JSON.stringify({ date: new Date().toISOString(), seconds: Math.round((performance.now() - started) / 1000), suites: reports }, null, 2)}\n`);
console.log(`\nevery run: ${values.out}`);
