#!/usr/bin/env node
// The package ships TypeScript sources; tsx loads them for the command line.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
await main(process.argv);
