import type { Environment, Suite } from "../harness/types.ts";
import { banking } from "./banking.ts";
import { messaging } from "./messaging.ts";
import { travel } from "./travel.ts";
import { workspace } from "./workspace.ts";

/** Every suite of the evaluation, in the order they run. */
export const suites: readonly Suite<Environment>[] = [workspace as unknown as Suite<Environment>, banking as unknown as Suite<Environment>, messaging as unknown as Suite<Environment>, travel as unknown as Suite<Environment>];
