import {
  InvalidInput,
  parseGrant,
  type DbRule,
  type ExecRule,
  type FsOp,
  type FsRule,
  type Grant,
  type HttpMethod,
  type HttpRule,
  type IncludeNeed,
  type IncludeRule,
  type Request,
} from "../kernel/index.js";
import { checkRequest, viewOfKey, type CheckedRequest } from "../kernel/internal.js";

/**
 * Automatic attenuation: the grant that allows exactly the requests a call
 * declared and nothing else. Every request is validated first (InvalidInput
 * names the bad need), and a domain no need mentions is left out, so it is
 * not granted at all.
 *
 * Where a grant cannot say "exactly", the rule defers to the links above it
 * rather than guessing: `allowPrivateNetwork` is set because the caller's own
 * links still decide whether a private address is allowed, and an HTTP rule
 * covers the URL's path (a path ending in `/` covers what is below it).
 */
export function grantForNeeds(tool: string, needs: readonly Request[]): Grant {
  if (needs.length === 0) return NOTHING;
  const checked = needs.map((need, i) => {
    try {
      return checkRequest(need);
    } catch (e) {
      if (e instanceof InvalidInput) throw new InvalidInput(`tool ${tool}: need ${i} is not a valid request: ${e.message}`);
      throw e;
    }
  });
  const tools = new Set<string>();
  const fs = new Map<string, Set<FsOp>>();
  const http = new Map<string, { origin: string; pathPrefix: string; methods: Set<HttpMethod> }>();
  const db: DbRule[] = [];
  const exec: ExecRule[] = [];
  const tenants = new Set<string>();
  let everyNeedNamesTenant = true;
  for (const r of checked) {
    if (r.tenant === null) everyNeedNamesTenant = false;
    else tenants.add(r.tenant);
    addNeed(r, { tools, fs, http, db, exec });
  }
  return {
    ...(tools.size > 0 ? { tools: [...tools] } : {}),
    ...(fs.size > 0 ? { fs: [...fs].map(([path, ops]): FsRule => ({ path, ops: [...ops], subtree: false })) } : {}),
    ...(http.size > 0
      ? { http: [...http.values()].map((h): HttpRule => ({ origin: h.origin, methods: [...h.methods], pathPrefix: h.pathPrefix, allowPrivateNetwork: true })) }
      : {}),
    ...(db.length > 0 ? { db } : {}),
    ...(exec.length > 0 ? { exec } : {}),
    // A tenant condition only when every need names one: a need without a tenant must stay allowed.
    ...(everyNeedNamesTenant && tenants.size > 0 ? { tenants: [...tenants] } : {}),
  };
}

/** The grant of a call that needs nothing: parsed once, so narrowing to it reads nothing again. */
const NOTHING: Grant = parseGrant({});

interface Domains {
  readonly tools: Set<string>;
  readonly fs: Map<string, Set<FsOp>>;
  readonly http: Map<string, { origin: string; pathPrefix: string; methods: Set<HttpMethod> }>;
  readonly db: DbRule[];
  readonly exec: ExecRule[];
}

function addNeed(r: CheckedRequest, d: Domains): void {
  switch (r.kind) {
    case "tool":
      d.tools.add(r.tool);
      return;
    case "fs": {
      const ops = d.fs.get(r.path) ?? new Set<FsOp>();
      ops.add(r.op as FsOp);
      d.fs.set(r.path, ops);
      return;
    }
    case "http": {
      const key = `${r.url.origin} ${r.url.pathname}`;
      const rule = d.http.get(key) ?? { origin: r.url.origin, pathPrefix: r.url.pathname, methods: new Set<HttpMethod>() };
      rule.methods.add(r.method);
      d.http.set(key, rule);
      return;
    }
    case "db":
      // The rule names exactly the fields and pins exactly the scope of the need: a request may use fewer fields and a tighter scope.
      d.db.push({
        model: r.model,
        ops: [r.op as DbRule["ops"][number]],
        fields: [...r.fields, ...r.views.keys()],
        scope: Object.fromEntries(r.scope),
        ...(r.views.size > 0 ? { fieldActions: Object.fromEntries([...r.views].map(([f, v]) => [f, viewOfKey(v)])) } : {}),
        ...(r.limit === null ? {} : { maxRows: r.limit }),
        // The relations the read includes, each with the fields it names, nested as deep as it nests: the resource decides them against every link.
        ...(r.include === null ? {} : { include: includeRules(r.include), maxIncludeDepth: includeHeight(r.include) }),
      });
      return;
    case "exec": {
      const [program = "", ...args] = r.argv;
      d.exec.push({ program, args, cwd: r.cwd, env: [...r.env] });
      return;
    }
  }
}

function includeRules(include: Readonly<Record<string, IncludeNeed>>): Record<string, IncludeRule> {
  return Object.fromEntries(Object.entries(include).map(([name, need]) => [name, need.fields === undefined ? {} : { fields: [...need.fields] }]));
}

/** Levels of includes at and below the top of `include` (1: it includes relations that include nothing). */
function includeHeight(include: Readonly<Record<string, IncludeNeed>>): number {
  return 1 + Math.max(0, ...Object.values(include).map((need) => (need.include === undefined ? 0 : includeHeight(need.include))));
}
