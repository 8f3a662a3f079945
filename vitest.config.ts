import { readFileSync } from "node:fs";
import { defineConfig } from "vitest/config";

// Inside the tests, the package's own entries resolve to the source they are built from, so an
// example that imports "agentcap/mcp" shares one copy of the kernel with the test that drives it.
const { exports } = JSON.parse(readFileSync(new URL("package.json", import.meta.url), "utf8")) as {
  exports: Record<string, string | { default: string }>;
};
const alias = Object.entries(exports).flatMap(([entry, target]) =>
  typeof target === "string"
    ? []
    : [{ find: new RegExp(`^agentcap${entry.slice(1).replace("/", "\\/")}$`), replacement: new URL(target.default.replace("./dist/", "src/").replace(/\.js$/, ".ts"), import.meta.url).pathname }],
);

export default defineConfig({
  resolve: { alias },
  test: {
    include: ["test/**/*.test.ts"],
    // The type tests (a capability's reach at compile time) are also checked by vitest itself, each expectation reported as a test.
    typecheck: { enabled: true, include: ["test/**/*types.test.ts"], tsconfig: "tsconfig.json" },
    testTimeout: 20_000,
  },
});
