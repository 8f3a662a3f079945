/*
 * Every section, in layer order; each prints its own baseline from the same
 * run. A section's module is loaded only when it runs, so `npm run bench --
 * mcp` loads the gateway and nothing the other sections measure.
 */
const SECTIONS: Readonly<Record<string, () => Promise<void>>> = {
  package: async () => {
    (await import("./package.ts")).runPackageBench();
  },
  kernel: async () => (await import("./kernel.ts")).runKernelBench(),
  fs: async () => (await import("./fs.ts")).runFsBench(),
  http: async () => (await import("./http.ts")).runHttpBench(),
  sql: async () => (await import("./sql.ts")).runSqlBench(),
  "sql-masked": async () => (await import("./sql-masked.ts")).runSqlMaskedBench(),
  exec: async () => (await import("./exec.ts")).runExecBench(),
  tools: async () => (await import("./tools.ts")).runToolsBench(),
  approvals: async () => (await import("./approvals.ts")).runApprovalsBench(),
  rates: async () => (await import("./rates.ts")).runRatesBench(),
  token: async () => (await import("./token.ts")).runTokenBench(),
  revocation: async () => (await import("./revocation.ts")).runRevocationBench(),
  audit: async () => (await import("./audit.ts")).runAuditBench(),
  sandbox: async () => (await import("./sandbox.ts")).runSandboxBench(),
  mcp: async () => (await import("./mcp.ts")).runMcpBench(),
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
