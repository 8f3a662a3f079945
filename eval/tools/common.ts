/*
 * What the suites' tool modules share. These modules are loaded sandboxed
 * (loadToolModule): they import only zod, agentcap/sandbox and their own
 * files, and reach resources only through their endowments, each method
 * taking the call's capability first.
 */
import type { ModuleCapability } from "agentcap/sandbox";

export interface FilesEndowment {
  readonly baseDir: string;
  read(capability: ModuleCapability, path: string, options?: { tenant?: string }): Promise<Uint8Array>;
  write(capability: ModuleCapability, path: string, data: string, options?: { tenant?: string }): Promise<void>;
  list(capability: ModuleCapability, path: string, options?: { tenant?: string }): Promise<readonly { name: string; type: string }[]>;
  delete(capability: ModuleCapability, path: string, options?: { tenant?: string }): Promise<void>;
}

export type Scalar = string | number | boolean | null;
export type Row = Record<string, Scalar>;

export interface DbEndowment {
  read(capability: ModuleCapability, query: { model: string; fields: readonly string[]; where?: Record<string, unknown>; orderBy?: readonly { field: string; direction?: "asc" | "desc" }[]; limit?: number; tenant?: string }): Promise<Row[]>;
  create(capability: ModuleCapability, query: { model: string; values: Record<string, Scalar>; returning?: readonly string[]; tenant?: string }): Promise<{ count: number; rows: readonly Row[] }>;
  update(capability: ModuleCapability, query: { model: string; set: Record<string, Scalar>; where?: Record<string, unknown>; returning?: readonly string[]; tenant?: string }): Promise<{ count: number; rows: readonly Row[] }>;
  delete(capability: ModuleCapability, query: { model: string; where?: Record<string, unknown>; tenant?: string }): Promise<{ count: number; rows: readonly Row[] }>;
}

export interface HttpEndowment {
  request(
    capability: ModuleCapability,
    url: string,
    init?: { method?: string; headers?: Record<string, string>; body?: string; tenant?: string },
  ): Promise<{ status: number; url: string; headers: Record<string, string>; body: Uint8Array }>;
}

/** `path` made absolute against `base`, with `.` and `..` resolved, as the file system resource decides it. */
export function under(base: string, path: string): string {
  const parts: string[] = [];
  for (const part of (path.startsWith("/") ? path : `${base}/${path}`).split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

export const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** The tenant option of a resource call, when the call acts for one. */
export const on = (tenant: string | null): { tenant?: string } => (tenant === null ? {} : { tenant });

/** A db need of the call's tenant: the row scope is the tenant's rows. */
export function rows(action: "db.read" | "db.create" | "db.update" | "db.delete", model: string, fields: readonly string[], tenant: string | null) {
  return { action, model, fields: [...fields], scope: tenant === null ? {} : { tenantId: tenant }, ...on(tenant) } as const;
}
