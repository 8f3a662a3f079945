/**
 * `agentcap/testing`: helpers for tests and demos. A scripted language model
 * plays an agent turn by turn, so a scenario (a prompt injection, a sub-agent)
 * runs the same way every time without a real model.
 */
export { scriptedModel } from "./scripted-model.js";
export type { ScriptedCall, ScriptedTurn, ScriptStep, SeenResult, StepContext } from "./scripted-model.js";
