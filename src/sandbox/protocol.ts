/*
 * The messages between the application's thread and a sandbox worker. All of
 * it is plain data (structured clone): no object of either side ever reaches
 * the other, so a capability stays on the host and the sandbox holds only
 * references the host looks up for the call they were given to. Types only:
 * the worker imports nothing of agentcap at run time.
 */

/** What a sandbox worker starts from (its `workerData`). */
export interface WorkerInit {
  /** Where the SES shim is, resolved by the application (so a missing one is a MissingDependency there). */
  readonly ses: string;
  /** The tool module compiled to a CommonJS function body. */
  readonly tool: { readonly code: string; readonly filename: string };
  /** The allowlisted modules, each compiled to a CommonJS function body, evaluated inside the sandbox when first required. */
  readonly modules: readonly { readonly specifier: string; readonly code: string }[];
  readonly endowments: Readonly<Record<string, EndowmentShape>>;
}

/**
 * One endowment as the sandbox sees it: plain data copied in, or an object
 * whose methods run on the host (each taking a capability first) and whose
 * plain-data properties are copied in.
 */
export type EndowmentShape =
  | { readonly kind: "data"; readonly value: unknown }
  | { readonly kind: "remote"; readonly data: Readonly<Record<string, unknown>>; readonly methods: readonly string[] };

/** A tool as the module defined it, for the host to register. */
export interface ToolInfo {
  readonly name: string;
  readonly description: string;
  /** The input's JSON schema (draft-07, input side), computed inside the sandbox. */
  readonly inputSchema: Readonly<Record<string, unknown>>;
}

/**
 * Which capability a sandboxed reference stands for: the capability of call
 * `call`, narrowed by each of `grants` in turn. The sandbox never sees more
 * than this, and the host resolves it only while that call runs.
 */
export interface CapabilityRef {
  readonly call: number;
  readonly grants: readonly unknown[];
}

/**
 * Messages from the host. `start` asks for a call's needs and then runs its
 * handler at once, before the host has authorized the call: the handler can
 * only act through requests to the host, which serves none of them until the
 * call is authorized (and refuses them all if it is not). `run` runs a
 * handler without asking for needs again.
 */
export type HostMessage =
  | { readonly t: "start"; readonly id: number; readonly tool: string; readonly input: unknown; readonly tenant: string | null }
  | { readonly t: "run"; readonly id: number; readonly tool: string; readonly input: unknown; readonly tenant: string | null }
  | { readonly t: "reply"; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly t: "reply"; readonly id: number; readonly ok: false; readonly error: HostError }
  /** Is the sandbox's event loop still turning? Answered with `pong` at once by a sandbox not stuck in a loop. */
  | { readonly t: "ping"; readonly id: number };

/** How one step of a call ended inside the sandbox. */
export type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: Thrown };

/**
 * Messages from the sandbox. `needs` and `done` answer the call `id` of a
 * `start` or `run`; `use` and `call` ask the host, under their own `id`.
 */
export type WorkerMessage =
  | { readonly t: "ready"; readonly tools: readonly ToolInfo[] }
  | { readonly t: "failed"; readonly error: Thrown }
  | { readonly t: "pong"; readonly id: number }
  | ({ readonly t: "needs"; readonly id: number } & Outcome)
  | ({ readonly t: "done"; readonly id: number } & Outcome)
  | {
      readonly t: "use";
      readonly id: number;
      readonly cap: CapabilityRef;
      readonly endowment: string;
      readonly method: string;
      readonly args: readonly unknown[];
    }
  | {
      readonly t: "call";
      readonly id: number;
      /** The call whose context made the sub-call. */
      readonly from: number;
      readonly cap: CapabilityRef;
      readonly tool: string;
      readonly input: unknown;
      readonly tenant: string | null;
    };

/** An error the host raised while serving the sandbox; `ref` lets the host rethrow the original if the tool lets it propagate. */
export interface HostError {
  readonly call: number;
  readonly ref: number;
  readonly name: string;
  readonly code: string;
  readonly message: string;
}

/** What sandboxed code threw, as the host should report it. */
export type Thrown =
  /** A barrier of the sandbox refused something. */
  | { readonly kind: "violation"; readonly message: string }
  /** A host error passed back up unchanged. */
  | { readonly kind: "host"; readonly error: HostError }
  /** The input failed the tool's own schema. */
  | { readonly kind: "input"; readonly message: string }
  /** The tool's result, needs or schema could not leave the sandbox as plain data. */
  | { readonly kind: "unclonable"; readonly message: string }
  /** The tool's own error. */
  | { readonly kind: "tool"; readonly name: string; readonly message: string }
  /** The sandbox itself could not start. */
  | { readonly kind: "internal"; readonly message: string };
