/*
 * The workspace suite's tools: files, a calendar and contacts in SQLite,
 * mail and web pages over HTTP. Loaded sandboxed by the suite.
 */
import { z } from "zod";
import { defineTool } from "agentcap/sandbox";
import { on, rows, text, under, type DbEndowment, type FilesEndowment, type HttpEndowment } from "./common.ts";

interface Endowed {
  readonly files: FilesEndowment;
  readonly db: DbEndowment;
  readonly http: HttpEndowment;
  readonly services: { readonly mail: string };
}

const pathInput = z.object({ path: z.string().min(1).describe("Path relative to the workspace.") });
const at = (e: Endowed, path: string) => under(e.files.baseDir, path);

export const readFile = defineTool<typeof pathInput, { path: string; text: string }, Endowed>(
  { name: "read_file", description: "Read a text file of the workspace.", input: pathInput, needs: ({ path }, { endowments, tenant }) => [{ action: "fs.read", path: at(endowments, path), ...on(tenant) }] },
  async ({ path }, cap, { endowments, tenant }) => ({ path, text: text(await endowments.files.read(cap, path, on(tenant))) }),
);

export const listFiles = defineTool<typeof pathInput, { path: string; entries: string[] }, Endowed>(
  { name: "list_files", description: "List a folder of the workspace.", input: pathInput, needs: ({ path }, { endowments, tenant }) => [{ action: "fs.list", path: at(endowments, path), ...on(tenant) }] },
  async ({ path }, cap, { endowments, tenant }) => ({ path, entries: (await endowments.files.list(cap, path, on(tenant))).map((e) => e.name).sort() }),
);

const writeInput = z.object({ path: z.string().min(1), content: z.string() });

export const writeFile = defineTool<typeof writeInput, { path: string; bytes: number }, Endowed>(
  { name: "write_file", description: "Create or replace a text file of the workspace.", input: writeInput, needs: ({ path }, { endowments, tenant }) => [{ action: "fs.write", path: at(endowments, path), ...on(tenant) }] },
  async ({ path, content }, cap, { endowments, tenant }) => {
    await endowments.files.write(cap, path, content, on(tenant));
    return { path, bytes: content.length };
  },
);

export const deleteFile = defineTool<typeof pathInput, { deleted: string }, Endowed>(
  { name: "delete_file", description: "Delete a file of the workspace.", input: pathInput, needs: ({ path }, { endowments, tenant }) => [{ action: "fs.delete", path: at(endowments, path), ...on(tenant) }] },
  async ({ path }, cap, { endowments, tenant }) => {
    await endowments.files.delete(cap, path, on(tenant));
    return { deleted: path };
  },
);

const EVENT_FIELDS = ["id", "title", "date", "start", "location", "participants", "description"] as const;
const dateInput = z.object({ date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/).describe("YYYY-MM-DD") });

export const listEvents = defineTool<typeof dateInput, unknown, Endowed>(
  { name: "list_events", description: "The calendar's events on one day.", input: dateInput, needs: (_i, { tenant }) => [rows("db.read", "Event", EVENT_FIELDS, tenant)] },
  ({ date }, cap, { endowments, tenant }) => endowments.db.read(cap, { model: "Event", fields: EVENT_FIELDS, where: { date }, orderBy: [{ field: "start" }], ...on(tenant) }),
);

const eventInput = z.object({
  title: z.string().min(1),
  date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  start: z.string().regex(/^\d{2}:\d{2}$/),
  location: z.string().default(""),
  participants: z.array(z.string()).default([]),
});
const CREATED = ["id", "title", "date", "start", "location", "participants", "description"] as const;

export const createEvent = defineTool<typeof eventInput, unknown, Endowed>(
  { name: "create_event", description: "Add an event to the calendar and invite its participants.", input: eventInput, needs: (_i, { tenant }) => [rows("db.create", "Event", CREATED, tenant)] },
  async (e, cap, { endowments, tenant }) =>
    (await endowments.db.create(cap, { model: "Event", values: { title: e.title, date: e.date, start: e.start, location: e.location, participants: e.participants.join(", "), description: "" }, returning: ["id"], ...on(tenant) })).rows[0],
);

const nameInput = z.object({ name: z.string().min(1) });

export const searchContacts = defineTool<typeof nameInput, unknown, Endowed>(
  { name: "search_contacts", description: "Find contacts whose name contains the given text.", input: nameInput, needs: (_i, { tenant }) => [rows("db.read", "Contact", ["name", "email"], tenant)] },
  ({ name }, cap, { endowments, tenant }) => endowments.db.read(cap, { model: "Contact", fields: ["name", "email"], where: { name: { contains: name } }, ...on(tenant) }),
);

const none = z.object({});

export const readInbox = defineTool<typeof none, unknown, Endowed>(
  { name: "read_inbox", description: "The emails in the inbox.", input: none, needs: (_i, { endowments, tenant }) => [{ action: "http.request", method: "GET", url: `${endowments.services.mail}/inbox`, ...on(tenant) }] },
  async (_i, cap, { endowments, tenant }) => JSON.parse(text((await endowments.http.request(cap, `${endowments.services.mail}/inbox`, on(tenant))).body)) as unknown,
);

const emailInput = z.object({ to: z.string().min(3), subject: z.string(), body: z.string() });

export const sendEmail = defineTool<typeof emailInput, unknown, Endowed>(
  { name: "send_email", description: "Send an email.", input: emailInput, needs: (_i, { endowments, tenant }) => [{ action: "http.request", method: "POST", url: `${endowments.services.mail}/send`, ...on(tenant) }] },
  async (email, cap, { endowments, tenant }) =>
    JSON.parse(text((await endowments.http.request(cap, `${endowments.services.mail}/send`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(email), ...on(tenant) })).body)) as unknown,
);

const urlInput = z.object({ url: z.string().regex(/^https?:\/\//, "must be an absolute http(s) URL") });

export const fetchPage = defineTool<typeof urlInput, { status: number; url: string; body: string }, Endowed>(
  { name: "fetch_page", description: "Fetch a web page (GET) and return its text.", input: urlInput, needs: ({ url }, { tenant }) => [{ action: "http.request", method: "GET", url, ...on(tenant) }] },
  async ({ url }, cap, { endowments, tenant }) => {
    const res = await endowments.http.request(cap, url, on(tenant));
    return { status: res.status, url: res.url, body: text(res.body) };
  },
);
