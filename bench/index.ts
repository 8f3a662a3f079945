import { runApprovalsBench } from "./approvals.ts";
import { runAuditBench } from "./audit.ts";
import { runExecBench } from "./exec.ts";
import { runFsBench } from "./fs.ts";
import { runHttpBench } from "./http.ts";
import { runKernelBench } from "./kernel.ts";
import { runMcpBench } from "./mcp.ts";
import { runPackageBench } from "./package.ts";
import { runRatesBench } from "./rates.ts";
import { runRevocationBench } from "./revocation.ts";
import { runSandboxBench } from "./sandbox.ts";
import { runSqlBench } from "./sql.ts";
import { runSqlMaskedBench } from "./sql-masked.ts";
import { runTokenBench } from "./token.ts";
import { runToolsBench } from "./tools.ts";

/** Every section, in layer order; each prints its own baseline from the same run. */
const SECTIONS: Readonly<Record<string, () => void | Promise<void>>> = {
  package: runPackageBench,
  kernel: runKernelBench,
  fs: runFsBench,
  http: runHttpBench,
  sql: runSqlBench,
  "sql-masked": runSqlMaskedBench,
  exec: runExecBench,
  tools: runToolsBench,
  approvals: runApprovalsBench,
  rates: runRatesBench,
  token: runTokenBench,
  revocation: runRevocationBench,
  audit: runAuditBench,
  sandbox: runSandboxBench,
  mcp: runMcpBench,
};

// `npm run bench -- kernel sql` runs only the sections named.
const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !(name in SECTIONS));
if (unknown.length > 0) {
  console.error(`unknown bench section(s): ${unknown.join(", ")}; choose from ${Object.keys(SECTIONS).join(", ")}`);
  process.exit(2);
}

console.log(`agentcap bench on Node ${process.version}, ${process.platform}/${process.arch}`);
for (const [name, run] of Object.entries(SECTIONS)) {
  if (wanted.length === 0 || wanted.includes(name)) await run();
}
