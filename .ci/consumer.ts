// A strict NodeNext consumer of every agentcap entry, compiled by .ci/package-check with skipLibCheck off.
import { check, createMint, isDenial, narrow, type Capability, type Decision, type FullReach, type Grant } from "agentcap";
import { openAuditStore, type AuditStore } from "agentcap/audit";
import { createExec, type Exec } from "agentcap/exec";
import { createFileSystem, type FileSystem } from "agentcap/fs";
import { createHttpClient, type HttpClient } from "agentcap/http";
import { listenHttp, openGateway, type Gateway, type GatewayConfig, type HttpGateway } from "agentcap/mcp";
import { createExecutor, createGovernor, openSession, type Executor } from "agentcap/runtime";
import { loadToolModule, type ToolModule } from "agentcap/sandbox";
import { createSqlDatabase, schemaFromDrizzle, type DrizzleImportOptions, type SqlDatabase } from "agentcap/sql";
import { scriptedModel } from "agentcap/testing";
import { createDispatcher, defineTool, type Dispatcher } from "agentcap/tools";
import { createTokenMint, generateKeyPair, openSqliteTokenStore, toToken, verify, type TokenStore } from "agentcap/token";

const grant: Grant = { tools: ["a"], fs: [{ path: "/srv", ops: ["read"] }] };
const mint = createMint({ issuer: "consumer", policy: () => grant });
const root: Capability<FullReach> = mint.issue({ id: "alice" });
const readOnly: Capability<{ fs: "read" }> = narrow(root, { fs: [{ path: "/srv/docs", ops: ["read"] }] });
const decision: Decision = check(readOnly, { action: "fs.read", path: "/srv/docs/a.txt" });
export const denied: boolean = !decision.allowed && isDenial(new Error("x"));

export const factories: readonly unknown[] = [
  createFileSystem,
  createHttpClient,
  createExec,
  createSqlDatabase,
  schemaFromDrizzle,
  openAuditStore,
  createDispatcher,
  defineTool,
  openSession,
  createGovernor,
  createExecutor,
  scriptedModel,
  loadToolModule,
  openGateway,
  listenHttp,
  createTokenMint,
  generateKeyPair,
  openSqliteTokenStore,
  toToken,
  verify,
];

// The Drizzle import's declarations name no drizzle-orm type: a consumer without drizzle-orm compiles them.
export const drizzleOptions: DrizzleImportOptions = { casing: "snake_case", leaveOut: { notes: ["meta"] } };

export type Everything = [FileSystem, HttpClient, Exec, SqlDatabase, AuditStore, Dispatcher, Executor, Gateway, GatewayConfig, HttpGateway, TokenStore, ToolModule];
