import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { httpClient, makeFixture, type Fixture } from "../mcp/support.ts";
import { narrow } from "../../src/index.ts";
import { eventFor } from "../audit/fixtures.ts";
import { explorerWorld } from "./world.ts";

/*
 * The explorer page in a real browser (Debian's chromium, driven by
 * playwright-core) against a gateway whose log holds calls made through it,
 * some with arguments an attacker chose: markup, javascript: URLs and
 * terminal escape sequences, which must show as text and never run.
 */

const repo = fileURLToPath(new URL("../../", import.meta.url));
const artifacts = path.join(repo, "test-artifacts");
const CHROMIUM = "/usr/bin/chromium";

const PLANTED = [
  'public/<img src=x onerror="window.__pwned=1">.txt',
  "public/javascript:window.__pwned=2",
  "public/\u001b[31mred\u001b]8;;javascript:window.__pwned=3\u0007click\u001b]8;;\u0007.txt",
];

let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;
let browser: Browser;
let page: Page;
let aliceClient: Awaited<ReturnType<typeof httpClient>>["client"];
/** What beforeAll opened, closed in reverse order even when it stopped half way. */
const closers: (() => unknown)[] = [];
const dialogs: string[] = [];
const problems: string[] = [];

beforeAll(async () => {
  if (!existsSync(path.join(repo, "dist/web/page/index.html"))) {
    const { build } = await import("vite");
    await build({ configFile: path.join(repo, "vite.config.ts"), root: path.join(repo, "src/web/ui"), logLevel: "error" });
  }
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  fixture = makeFixture();
  closers.push(() => { fixture.cleanup(); });
  const config = fixture.config as { policy: { roles: Record<string, unknown>; principals: Record<string, unknown> } };
  config.policy.roles.auditor = { audit: ["read"], revoke: [{ target: "session" }, { target: "link" }, { target: "principal" }] };
  config.policy.principals.auditor = { roles: ["auditor"] };
  writeFileSync(fixture.configFile, JSON.stringify(config));
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  closers.push(() => gateway.close());
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
  closers.push(() => http.close());

  aliceClient = (await httpClient(http.url, gateway.issueToken("alice"))).client;
  closers.push(() => aliceClient.close().catch(() => undefined));
  await aliceClient.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } });
  await aliceClient.callTool({ name: "read_file", arguments: { path: "private/secret.txt" } });
  for (const p of PLANTED) await aliceClient.callTool({ name: "read_file", arguments: { path: p } });
  const bob = (await httpClient(http.url, gateway.issueToken("bob"))).client;
  await bob.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } });
  await bob.close();

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  closers.push(() => browser.close());
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  // Any request to another origin would mean the page is not self-contained.
  page.on("request", (r) => {
    if (!r.url().startsWith(new URL(http.url).origin) && !r.url().startsWith("data:")) problems.push(`request to ${r.url()}`);
  });
  // Collected in the page itself, read back at the end: any CSP violation means something tried to load or run that the page does not own.
  await page.addInitScript({ content: "window.__csp = []; document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective));" });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

async function signIn(token: string): Promise<void> {
  await page.goto(`${new URL(http.url).origin}/explore/`);
  await page.getByLabel("Token with an audit read grant").fill(token);
  await page.getByRole("button", { name: "Open" }).click();
}

describe("the explorer page in chromium", () => {
  it("refuses a token without an audit grant, and says why", async () => {
    await signIn(gateway.issueToken("alice"));
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("does not grant reading the audit log");
  });

  it("signs in, lists the gateway's calls, and filters them like the query primitive", async () => {
    await signIn(gateway.issueToken("auditor"));
    await page.getByRole("heading", { name: "Timeline" }).waitFor();
    await expect.poll(() => page.locator("table.events tbody tr").count()).toBeGreaterThanOrEqual(6);
    expect(await page.locator("table.events tbody").textContent()).toContain("bob");

    await page.getByLabel("Principal").fill("alice");
    await page.getByLabel("Decision").selectOption("denied");
    await page.getByRole("button", { name: "Filter" }).click();
    await expect.poll(async () => (await page.locator("table.events tbody").textContent()) ?? "").not.toContain("bob");
    const rows = page.locator("table.events tbody tr");
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    for (const text of await rows.allTextContents()) {
      expect(text).toContain("alice");
      expect(text).toContain("Denied");
    }
    await page.getByRole("button", { name: "Clear" }).click();
  });

  it("shows what an agent planted as text: nothing it wrote runs, and escape sequences are visible", async () => {
    await expect.poll(async () => (await page.locator("table.events tbody").textContent()) ?? "").toContain('<img src=x onerror="window.__pwned=1">');
    expect(await page.locator("table.events tbody").textContent()).toContain("javascript:window.__pwned=2");
    // ESC and BEL show as the control pictures ␛ and ␇.
    expect(await page.locator("table.events tbody").textContent()).toContain("\u241b[31mred\u241b]8;;javascript:window.__pwned=3\u2407click");
    expect(await page.locator("main img").count()).toBe(0);
    expect(await page.locator('main a[href^="javascript:"]').count()).toBe(0);
    expect(await page.evaluate("typeof window.__pwned")).toBe("undefined");
    expect(dialogs).toEqual([]);
  });

  it("charts calls and denials over time by principal, tool and tenant, with the timeline's filters and a table for reading", async () => {
    const charts = page.getByRole("region", { name: "Calls and denials over time" });
    // One labelled SVG chart per principal, drawn from the page's own script: alice made calls, some denied; bob made one (refused).
    await expect.poll(() => charts.getByRole("img", { name: /^alice: \d+ calls, [1-9]\d* denied, from / }).count()).toBe(1);
    await expect.poll(() => charts.getByRole("img", { name: /^bob: 1 call, 1 denied, from / }).count()).toBe(1);
    expect(await charts.locator("svg .bar-denied").count()).toBeGreaterThan(0);

    await charts.getByLabel("Group by").selectOption("tool");
    await expect.poll(() => charts.getByRole("img", { name: /^read_file: \d+ calls/ }).count()).toBe(1);
    await charts.getByLabel("Group by").selectOption("principal");

    // The same filters as the timeline: alice only.
    await page.getByLabel("Principal").fill("alice");
    await page.getByRole("button", { name: "Filter" }).click();
    await expect.poll(() => charts.getByRole("img").count()).toBe(1);
    await expect.poll(() => charts.getByRole("img", { name: /^alice: / }).count()).toBe(1);

    // The text alternative: every span's counts, per principal.
    await charts.getByText("The charts as a table").click();
    const table = charts.getByRole("table", { name: /Calls \(denied in brackets\) per span, by principal/ });
    await table.waitFor();
    expect(await table.getByRole("row").count()).toBe(25);
    expect(await table.getByRole("columnheader").allTextContents()).toEqual(["From (UTC)", "alice"]);
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, "explorer-charts.png"), fullPage: true });
    await page.getByRole("button", { name: "Clear" }).click();
  });

  it("opens a delegation tree from the timeline, works with the keyboard, and keeps a screenshot", async () => {
    await page.getByLabel("Principal").fill("alice");
    await page.getByRole("button", { name: "Filter" }).click();
    await expect.poll(async () => (await page.locator("table.events tbody").textContent()) ?? "").not.toContain("bob");
    await page.getByRole("button", { name: /^Delegation tree of root/ }).first().click();
    await page.getByRole("heading", { name: "Delegation tree" }).waitFor();
    const tree = page.getByRole("tree");
    await tree.waitFor();
    expect(await tree.textContent()).toContain("session");
    expect(await page.locator(".badge.live").count()).toBeGreaterThan(0);
    expect(await page.locator(".denied-count").count()).toBeGreaterThan(0);

    // The first toggle collapses with the keyboard alone.
    const toggle = page.getByRole("button", { name: /^Collapse/ }).first();
    await toggle.focus();
    await page.keyboard.press("Enter");
    await expect.poll(() => page.getByRole("treeitem").first().getAttribute("aria-expanded")).toBe("false");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.getByRole("treeitem").first().getAttribute("aria-expanded")).toBe("true");

    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, "explorer-tree.png"), fullPage: true });
    expect(existsSync(path.join(artifacts, "explorer-tree.png"))).toBe(true);
  });

  it("revokes a session after confirmation, says what it reached, and the session's client is cut off", async () => {
    await page.getByRole("button", { name: "Revoke session" }).first().click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain("cannot be undone");
    // Cancelling revokes nothing.
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect((await gateway.tokenStore.list()).length).toBe(0);

    await page.getByRole("button", { name: "Revoke session" }).first().click();
    await dialog.getByLabel("Reason").fill("incident 7: exfiltration attempt");
    await dialog.getByRole("button", { name: "Revoke" }).click();
    const notice = page.getByRole("status");
    await expect.poll(() => notice.textContent()).toContain("Revoked session");
    expect(await notice.textContent()).toContain("1 session");
    expect((await gateway.tokenStore.list()).map((e) => e.kind)).toEqual(["session"]);
    await expect.poll(() => page.locator(".badge.revoked").count()).toBeGreaterThan(0);
    await expect(aliceClient.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } })).rejects.toThrow();
    await page.screenshot({ path: path.join(artifacts, "explorer-revoked.png"), fullPage: true });
  });

  it("ran under its Content-Security-Policy with no violation, no error and no request elsewhere", async () => {
    expect(await page.evaluate("window.__csp")).toEqual([]);
    expect(problems.filter((p) => !p.includes("401") && !p.includes("403"))).toEqual([]);
  });
});

/** A new tab on `world`'s explorer, signed in with the admin's token and showing the timeline. */
async function signedIn(world: Awaited<ReturnType<typeof explorerWorld>>): Promise<Page> {
  const tab = await browser.newPage();
  await tab.goto(world.url);
  await tab.getByLabel("Token with an audit read grant").fill(world.token("admin"));
  await tab.getByRole("button", { name: "Open" }).click();
  await tab.getByRole("heading", { name: "Timeline" }).waitFor();
  return tab;
}

describe("the delegation tree's root field", () => {
  it("keeps what is typed before the view's effects have run, as on a busy machine", async () => {
    const world = await explorerWorld({ pageDir: path.join(repo, "dist/web/page") });
    closers.push(() => world.close());
    await world.audit.write(eventFor(narrow(world.w.alice, { tools: ["search"] }), { action: "tool.call", tool: "search" }));
    const tab = await signedIn(world);
    // The page's timers stand still: the tree's view renders, but its effects (which run after a paint) wait, as on a starved machine.
    await tab.clock.install();
    await tab.clock.pauseAt(Date.now() + 60_000);
    await tab.getByRole("button", { name: "Delegation tree", exact: true }).click();
    await tab.getByLabel("Root capability").fill(world.w.alice.id);
    await tab.clock.runFor(1_000);
    expect(await tab.getByLabel("Root capability").inputValue()).toBe(world.w.alice.id);
    await tab.clock.resume();
    await tab.getByRole("button", { name: "Open tree" }).click();
    await tab.getByRole("tree").waitFor();
    await tab.close();
  }, 60_000);
});

describe("a delegation tree of 10,000 capabilities in chromium", () => {
  it("renders only what is open: a hundred children at a time, the rest a click away", async () => {
    const world = await explorerWorld({ pageDir: path.join(repo, "dist/web/page") });
    closers.push(() => world.close());
    const parent = narrow(world.w.alice, { tools: ["search"] });
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => world.audit.write(eventFor(narrow(parent, { tools: ["search"] }), { action: "tool.call", tool: i % 10 === 0 ? "fetch_page" : "search" }))));
    const tab = await signedIn(world);
    await tab.getByRole("button", { name: "Delegation tree", exact: true }).click();
    await tab.getByLabel("Root capability").fill(world.w.alice.id);
    await tab.getByRole("button", { name: "Open tree" }).click();
    await tab.getByRole("tree").waitFor();
    expect(await tab.locator("p", { hasText: "Minted for" }).textContent()).toMatch(/10,?00[0-9] capabilities/);
    // Root, the narrowed parent, its first hundred children; not ten thousand rows.
    await expect.poll(() => tab.getByRole("treeitem").count()).toBeLessThan(150);
    const more = tab.getByRole("button", { name: /^Show 100 more of 99\d\d$/ });
    await more.click();
    await expect.poll(() => tab.getByRole("treeitem").count()).toBeGreaterThan(200);
    expect(await tab.locator(".denied-count").count()).toBeGreaterThan(0);
    await tab.close();
    // Ten thousand audit writes and a browser: about 2 s on an idle machine, past the default 20 s when the whole suite shares two cores.
  }, 60_000);
});
