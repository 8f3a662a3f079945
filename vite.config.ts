import { defineConfig } from "vite";

/*
 * The audit explorer's page, built into the package (dist/web/page) by
 * `npm run build`: everything it loads is its own file, so it works offline
 * and under a Content-Security-Policy that allows nothing else.
 */
export default defineConfig({
  root: "src/web/ui",
  base: "./",
  logLevel: "warn",
  build: {
    outDir: "../../../dist/web/page",
    emptyOutDir: true,
    // The page's CSP forbids inline scripts and data: scripts; keep every asset a file of its own.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
});
