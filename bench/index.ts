import { runKernelBench } from "./kernel.ts";

console.log(`agentcap bench on Node ${process.version}, ${process.platform}/${process.arch}`);
runKernelBench();
