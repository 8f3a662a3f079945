/*
 * The messaging suite's tools: channels, messages, members and a user
 * directory in SQLite, and link previews over HTTP. Loaded sandboxed.
 */
import { z } from "zod";
import { defineTool } from "agentcap/sandbox";
import { on, rows, text, type DbEndowment, type HttpEndowment, type Row } from "./common.ts";

interface Endowed {
  readonly db: DbEndowment;
  readonly http: HttpEndowment;
}

const none = z.object({});
const channelInput = z.object({ channel: z.string().min(1).describe("Channel name without #.") });

export const listChannels = defineTool<typeof none, Row[], Endowed>(
  { name: "list_channels", description: "The channels you can see, with their topics.", input: none, needs: (_i, { tenant }) => [rows("db.read", "Channel", ["name", "topic"], tenant)] },
  (_i, cap, { endowments, tenant }) => endowments.db.read(cap, { model: "Channel", fields: ["name", "topic"], ...on(tenant) }),
);

const MESSAGE = ["id", "channel", "author", "text"] as const;

export const readChannel = defineTool<typeof channelInput, Row[], Endowed>(
  {
    name: "read_channel",
    description: "The messages of one channel, oldest first.",
    input: channelInput,
    // The row scope pins the channel: a capability for #general reads #general and nothing else.
    needs: ({ channel }, { tenant }) => [{ ...rows("db.read", "Message", MESSAGE, tenant), scope: { ...(tenant === null ? {} : { tenantId: tenant }), channel } }],
  },
  ({ channel }, cap, { endowments, tenant }) => endowments.db.read(cap, { model: "Message", fields: MESSAGE, where: { channel }, orderBy: [{ field: "id" }], ...on(tenant) }),
);

const postInput = z.object({ channel: z.string().min(1), text: z.string().min(1) });

export const postMessage = defineTool<typeof postInput, { posted: boolean }, Endowed>(
  {
    name: "post_message",
    description: "Post a message to a channel.",
    input: postInput,
    needs: ({ channel }, { tenant }) => [{ ...rows("db.create", "Message", ["channel", "author", "text"], tenant), scope: { ...(tenant === null ? {} : { tenantId: tenant }), channel } }],
  },
  async ({ channel, text: body }, cap, { endowments, tenant }) => {
    await endowments.db.create(cap, { model: "Message", values: { channel, author: "assistant", text: body }, ...on(tenant) });
    return { posted: true };
  },
);

const dmInput = z.object({ user: z.string().min(1).describe("The user's handle."), text: z.string().min(1) });

export const sendDm = defineTool<typeof dmInput, { sent: boolean }, Endowed>(
  {
    name: "send_dm",
    description: "Send a direct message to a user.",
    input: dmInput,
    needs: ({ user }, { tenant }) => [{ ...rows("db.create", "Message", ["channel", "author", "text"], tenant), scope: { ...(tenant === null ? {} : { tenantId: tenant }), channel: `dm:${user}` } }],
  },
  async ({ user, text: body }, cap, { endowments, tenant }) => {
    await endowments.db.create(cap, { model: "Message", values: { channel: `dm:${user}`, author: "assistant", text: body }, ...on(tenant) });
    return { sent: true };
  },
);

const inviteInput = z.object({ channel: z.string().min(1), user: z.string().min(1) });

export const inviteUser = defineTool<typeof inviteInput, { invited: string }, Endowed>(
  {
    name: "invite_user",
    description: "Add a user to a channel.",
    input: inviteInput,
    needs: ({ channel }, { tenant }) => [{ ...rows("db.create", "Member", ["channel", "user"], tenant), scope: { ...(tenant === null ? {} : { tenantId: tenant }), channel } }],
  },
  async ({ channel, user }, cap, { endowments, tenant }) => {
    await endowments.db.create(cap, { model: "Member", values: { channel, user }, ...on(tenant) });
    return { invited: user };
  },
);

const userInput = z.object({ handle: z.string().min(1) });

export const getUser = defineTool<typeof userInput, Row[], Endowed>(
  { name: "get_user", description: "A user's profile from the directory.", input: userInput, needs: (_i, { tenant }) => [rows("db.read", "User", ["handle", "name", "title"], tenant)] },
  ({ handle }, cap, { endowments, tenant }) => endowments.db.read(cap, { model: "User", fields: ["handle", "name", "title"], where: { handle }, ...on(tenant) }),
);

const linkInput = z.object({ url: z.string().regex(/^https?:\/\//, "must be an absolute http(s) URL") });

export const openLink = defineTool<typeof linkInput, { status: number; url: string; body: string }, Endowed>(
  { name: "open_link", description: "Open a link shared in a channel and return the page's text.", input: linkInput, needs: ({ url }, { tenant }) => [{ action: "http.request", method: "GET", url, ...on(tenant) }] },
  async ({ url }, cap, { endowments, tenant }) => {
    const res = await endowments.http.request(cap, url, on(tenant));
    return { status: res.status, url: res.url, body: text(res.body) };
  },
);
