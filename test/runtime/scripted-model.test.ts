import { generateText } from "ai";
import { describe, expect, it } from "vitest";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { scriptedModel } from "../../src/testing/scripted-model.ts";

describe("scriptedModel", () => {
  it("plays its steps in order, then ends the script", async () => {
    const model = scriptedModel([{ text: "one" }, () => ({ text: "two" })]);
    expect((await generateText({ model, prompt: "a" })).text).toBe("one");
    expect((await generateText({ model, prompt: "b" })).text).toBe("two");
    expect((await generateText({ model, prompt: "c" })).text).toBe("(end of script)");
  });

  it("refuses a script that is not an array", () => {
    expect(() => scriptedModel("say hi" as never)).toThrow(InvalidInput);
  });
});
