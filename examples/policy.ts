import type { Grant, MintPolicy } from "agentcap";

/**
 * An example mint policy: what a principal may do follows from its roles and
 * tenants. Support agents read their tenant's customers and orders and the
 * shared knowledge base; admins may also update customers. Nobody gets
 * anything the policy does not name.
 */
export const examplePolicy: MintPolicy = (principal) => {
  const tenant = principal.tenants[0];
  if (tenant === undefined) return null;
  const isAdmin = principal.roles.includes("admin");
  const grant: Grant = {
    tenants: principal.tenants,
    tools: ["lookup_customer", "list_orders", "read_kb", ...(isAdmin ? ["update_customer"] : [])],
    fs: [{ path: "/srv/kb", ops: ["read", "list"] }],
    db: [
      { model: "Customer", ops: isAdmin ? ["read", "update"] : ["read"], scope: { tenantId: tenant } },
      { model: "Order", ops: ["read"], scope: { tenantId: tenant } },
    ],
  };
  return grant;
};
