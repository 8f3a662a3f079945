import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/**", "coverage/**", ".agentcap/**", "dist/**", ".ci/**"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      "@typescript-eslint/no-extraneous-class": "off",
    },
  },
  {
    // The package is built with tsc: its own modules name each other by the .js they compile to.
    files: ["src/**/*.ts"],
    rules: {
      "no-restricted-syntax": [
        "error",
        { selector: "ImportDeclaration[source.value=/^\\.{1,2}\\/.*\\.ts$/]", message: "inside src/, import other modules by their .js name" },
        { selector: "ExportNamedDeclaration[source.value=/^\\.{1,2}\\/.*\\.ts$/]", message: "inside src/, export from other modules by their .js name" },
        { selector: "ExportAllDeclaration[source.value=/^\\.{1,2}\\/.*\\.ts$/]", message: "inside src/, export from other modules by their .js name" },
        { selector: "ImportExpression[source.value=/^\\.{1,2}\\/.*\\.ts$/]", message: "inside src/, import other modules by their .js name" },
      ],
    },
  },
  {
    files: ["eslint.config.js", "bin/**/*.js"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: "readonly" },
    },
  },
);
