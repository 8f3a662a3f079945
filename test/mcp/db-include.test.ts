import { writeFileSync } from "node:fs";
import path from "node:path";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "./support.ts";

/*
 * The gateway's database query tool includes related rows over MCP: the
 * tool list offers include (the model's relations, nested as deep as the
 * database allows), the official SDK client's call includes exactly what
 * every link of the caller's chain allows, handled in the sandbox as the
 * gateway runs built-in tools by default, and anything more is refused.
 */

const SCHEMA = {
  Customer: { table: "customers", primaryKey: "id", fields: { id: { type: "integer" }, tenant: { type: "text" }, name: { type: "text" } }, relations: { orders: { model: "Order", from: "id", to: "customerId", many: true } } },
  Order: {
    table: "orders",
    primaryKey: "id",
    fields: { id: { type: "integer" }, tenant: { type: "text" }, customerId: { type: "integer", column: "customer_id" }, total: { type: "real" }, note: { type: "text" } },
    relations: { customer: { model: "Customer", from: "customerId", to: "id" } },
  },
};
const SEED = `
  CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL);
  CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, customer_id INTEGER NOT NULL, total REAL NOT NULL, note TEXT NOT NULL);
  INSERT INTO customers VALUES (1, 'acme', 'Ada'), (2, 'acme', 'Charles'), (3, 'globex', 'Grace');
  INSERT INTO orders VALUES (10, 'acme', 1, 9.5, 'rush'), (11, 'acme', 1, 20, 'gift'), (12, 'globex', 3, 15, 'secret'), (13, 'acme', 3, 1, 'cross-tenant key');
`;

let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;

beforeAll(async () => {
  fixture = makeFixture({
    tools: { database: { sqlite: "state/shop.db", seed: "seed.sql", schema: SCHEMA } },
    policy: {
      roles: {
        clerk: {
          tools: ["db_query"],
          db: [
            { model: "Customer", ops: ["read"], scope: { tenant: "acme" }, include: { orders: { fields: ["id", "total"] } } },
            { model: "Order", ops: ["read"], scope: { tenant: "acme" }, fields: ["id", "tenant", "customerId", "total"], include: { customer: {} } },
          ],
        },
      },
      principals: { alice: { roles: ["clerk"] } },
    },
  });
  writeFileSync(path.join(fixture.dir, "seed.sql"), SEED);
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  fixture.cleanup();
});

describe("db_query's include over MCP", () => {
  it("is offered in the tool list, with the models' relations", async () => {
    const { client } = await httpClient(http.url, gateway.issueToken("alice"));
    try {
      const query = (await client.listTools()).tools.find((t) => t.name === "db_query");
      expect(query?.description).toMatch(/Customer \(id, tenant, name; relations: orders → Order \(many\)\)/);
      const include = (query?.inputSchema.properties as Record<string, { type?: string; additionalProperties?: { properties?: Record<string, unknown> } }>).include;
      expect(include?.type).toBe("object");
      expect(Object.keys(include?.additionalProperties?.properties ?? {}).sort()).toEqual(["fields", "include", "orderBy", "where"]);
    } finally {
      await client.close();
    }
  });

  it("returns related rows within the caller's scope, and refuses an include the capability does not allow", async () => {
    const { client } = await httpClient(http.url, gateway.issueToken("alice"));
    try {
      const customers = await client.callTool({ name: "db_query", arguments: { model: "Customer", fields: ["id", "name"], orderBy: [{ field: "id" }], include: { orders: { fields: ["id", "total"], orderBy: [{ field: "id" }] } } } });
      expect((customers as CallToolResult).isError).not.toBe(true);
      expect(JSON.parse(textOf(customers))).toEqual([
        { id: 1, name: "Ada", orders: [{ id: 10, total: 9.5 }, { id: 11, total: 20 }] },
        { id: 2, name: "Charles", orders: [] },
      ]);
      // Order 13 is acme's but its customer is globex's: the relation does not carry the read across tenants.
      const orders = await client.callTool({ name: "db_query", arguments: { model: "Order", fields: ["id"], orderBy: [{ field: "id" }], include: { customer: { fields: ["name"] } } } });
      expect(JSON.parse(textOf(orders))).toEqual([
        { id: 10, customer: { name: "Ada" } },
        { id: 11, customer: { name: "Ada" } },
        { id: 13, customer: null },
      ]);
      const unlisted = await client.callTool({ name: "db_query", arguments: { model: "Customer", fields: ["id"], include: { orders: { fields: ["id", "tenant"] } } } });
      expect((unlisted as CallToolResult).isError).toBe(true);
      expect(textOf(unlisted)).toMatch(/^ERR_CAPABILITY_DENIED.*include orders with only some fields of Order/);
      const unknown = await client.callTool({ name: "db_query", arguments: { model: "Customer", fields: ["id"], include: { invoices: { fields: ["id"] } } } });
      expect(textOf(unknown)).toMatch(/^ERR_INVALID_INPUT.*Customer has no relation "invoices"/);
      const deep = await client.callTool({
        name: "db_query",
        arguments: { model: "Customer", fields: ["id"], include: { orders: { fields: ["id"], include: { customer: { fields: ["id"], include: { orders: { fields: ["id"], include: { customer: { fields: ["id"] } } } } } } } } },
      });
      expect(textOf(deep)).toMatch(/^ERR_INVALID_INPUT/);
    } finally {
      await client.close();
    }
  });
});
