/*
 * The travel suite's tools: the booking service and the reviews site over
 * HTTP, the traveller's profile and trips in SQLite, travel documents as
 * files. Loaded sandboxed.
 */
import { z } from "zod";
import { defineTool } from "agentcap/sandbox";
import { on, rows, text, under, type DbEndowment, type FilesEndowment, type HttpEndowment, type Row } from "./common.ts";

interface Endowed {
  readonly files: FilesEndowment;
  readonly db: DbEndowment;
  readonly http: HttpEndowment;
  readonly services: { readonly api: string; readonly reviews: string };
}

type Ctx = { endowments: Endowed; tenant: string | null };

const get = (url: (e: Endowed, input: never) => string) => (input: object, { endowments, tenant }: Ctx) => [{ action: "http.request" as const, method: "GET" as const, url: url(endowments, input as never), ...on(tenant) }];
const post = (url: (e: Endowed, input: never) => string) => (input: object, { endowments, tenant }: Ctx) => [{ action: "http.request" as const, method: "POST" as const, url: url(endowments, input as never), ...on(tenant) }];

async function call(cap: object, { endowments, tenant }: Ctx, url: string, body?: unknown): Promise<unknown> {
  const res = await endowments.http.request(cap, url, body === undefined ? on(tenant) : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), ...on(tenant) });
  const payload = text(res.body);
  if (res.status >= 400) throw new Error(`the service answered ${String(res.status)}: ${payload.slice(0, 200)}`);
  return JSON.parse(payload) as unknown;
}

const cityInput = z.object({ city: z.string().min(1) });
const hotelsUrl = (e: Endowed, { city }: { city: string }) => `${e.services.api}/hotels?city=${encodeURIComponent(city)}`;

export const searchHotels = defineTool<typeof cityInput, unknown, Endowed>(
  { name: "search_hotels", description: "Hotels in a city, with price per night and rating.", input: cityInput, needs: get(hotelsUrl) },
  (input, cap, ctx) => call(cap, ctx, hotelsUrl(ctx.endowments, input)),
);

const hotelInput = z.object({ hotelId: z.string().regex(/^[\w-]+$/) });
const reviewsUrl = (e: Endowed, { hotelId }: { hotelId: string }) => `${e.services.reviews}/reviews/${hotelId}`;

export const hotelReviews = defineTool<typeof hotelInput, unknown, Endowed>(
  { name: "hotel_reviews", description: "Guests' reviews of a hotel.", input: hotelInput, needs: get(reviewsUrl) },
  (input, cap, ctx) => call(cap, ctx, reviewsUrl(ctx.endowments, input)),
);

const reviewInput = z.object({ hotelId: z.string().regex(/^[\w-]+$/), text: z.string().min(1) });

export const postReview = defineTool<typeof reviewInput, unknown, Endowed>(
  { name: "post_review", description: "Publish a review of a hotel.", input: reviewInput, needs: post(reviewsUrl) },
  (input, cap, ctx) => call(cap, ctx, reviewsUrl(ctx.endowments, input), { text: input.text }),
);

const routeInput = z.object({ from: z.string().length(3), to: z.string().length(3) });
const flightsUrl = (e: Endowed, { from, to }: { from: string; to: string }) => `${e.services.api}/flights?from=${from}&to=${to}`;

export const searchFlights = defineTool<typeof routeInput, unknown, Endowed>(
  { name: "search_flights", description: "Flights between two airports (IATA codes).", input: routeInput, needs: get(flightsUrl) },
  (input, cap, ctx) => call(cap, ctx, flightsUrl(ctx.endowments, input)),
);

const bookingsUrl = (e: Endowed) => `${e.services.api}/bookings`;
const hotelBooking = z.object({ hotelId: z.string().regex(/^[\w-]+$/), nights: z.number().int().positive(), note: z.string().default("") });

export const bookHotel = defineTool<typeof hotelBooking, unknown, Endowed>(
  { name: "book_hotel", description: "Book a hotel for a number of nights.", input: hotelBooking, needs: post(bookingsUrl) },
  (input, cap, ctx) => call(cap, ctx, bookingsUrl(ctx.endowments), { kind: "hotel", itemId: input.hotelId, nights: input.nights, note: input.note }),
);

const flightBooking = z.object({ flightId: z.string().regex(/^[\w-]+$/), note: z.string().default("") });

export const bookFlight = defineTool<typeof flightBooking, unknown, Endowed>(
  { name: "book_flight", description: "Book a seat on a flight.", input: flightBooking, needs: post(bookingsUrl) },
  (input, cap, ctx) => call(cap, ctx, bookingsUrl(ctx.endowments), { kind: "flight", itemId: input.flightId, note: input.note }),
);

const none = z.object({});

export const listBookings = defineTool<typeof none, unknown, Endowed>(
  { name: "list_bookings", description: "Your bookings.", input: none, needs: get(bookingsUrl) },
  (_i, cap, ctx) => call(cap, ctx, bookingsUrl(ctx.endowments)),
);

const cancelInput = z.object({ bookingId: z.string().regex(/^[\w-]+$/) });
const cancelUrl = (e: Endowed, { bookingId }: { bookingId: string }) => `${e.services.api}/bookings/${bookingId}/cancel`;

export const cancelBooking = defineTool<typeof cancelInput, unknown, Endowed>(
  { name: "cancel_booking", description: "Cancel one of your bookings.", input: cancelInput, needs: post(cancelUrl) },
  (input, cap, ctx) => call(cap, ctx, cancelUrl(ctx.endowments, input), {}),
);

const PROFILE = ["name", "email", "passport"] as const;

export const getProfile = defineTool<typeof none, Row[], Endowed>(
  { name: "get_profile", description: "The traveller's profile: name, email and passport number.", input: none, needs: (_i, { tenant }) => [rows("db.read", "Traveler", PROFILE, tenant)] },
  (_i, cap, { endowments, tenant }) => endowments.db.read(cap, { model: "Traveler", fields: PROFILE, ...on(tenant) }),
);

const emailInput = z.object({ email: z.string().min(3) });

export const updateEmail = defineTool<typeof emailInput, { updated: string }, Endowed>(
  { name: "update_email", description: "Change the email bookings are sent to.", input: emailInput, needs: (_i, { tenant }) => [rows("db.update", "Traveler", ["email"], tenant)] },
  async ({ email }, cap, { endowments, tenant }) => {
    await endowments.db.update(cap, { model: "Traveler", set: { email }, ...on(tenant) });
    return { updated: email };
  },
);

const TRIP = ["id", "city", "start", "end", "note"] as const;

export const listTrips = defineTool<typeof none, Row[], Endowed>(
  { name: "list_trips", description: "Your planned trips.", input: none, needs: (_i, { tenant }) => [rows("db.read", "Trip", TRIP, tenant)] },
  (_i, cap, { endowments, tenant }) => endowments.db.read(cap, { model: "Trip", fields: TRIP, orderBy: [{ field: "start" }], ...on(tenant) }),
);

const noteInput = z.object({ city: z.string().min(1), note: z.string() });

export const noteTrip = defineTool<typeof noteInput, { count: number }, Endowed>(
  { name: "note_trip", description: "Set the note of your trip to a city.", input: noteInput, needs: (_i, { tenant }) => [rows("db.update", "Trip", ["note", "city"], tenant)] },
  async ({ city, note }, cap, { endowments, tenant }) => ({ count: (await endowments.db.update(cap, { model: "Trip", set: { note }, where: { city }, ...on(tenant) })).count }),
);

const pathInput = z.object({ path: z.string().min(1) });

export const readDoc = defineTool<typeof pathInput, { path: string; text: string }, Endowed>(
  { name: "read_doc", description: "Read one of your travel documents.", input: pathInput, needs: ({ path }, { endowments, tenant }) => [{ action: "fs.read", path: under(endowments.files.baseDir, path), ...on(tenant) }] },
  async ({ path }, cap, { endowments, tenant }) => ({ path, text: text(await endowments.files.read(cap, path, on(tenant))) }),
);

const urlInput = z.object({ url: z.string().regex(/^https?:\/\//, "must be an absolute http(s) URL") });

export const openLink = defineTool<typeof urlInput, { status: number; url: string; body: string }, Endowed>(
  { name: "open_link", description: "Open a web link and return the page's text.", input: urlInput, needs: ({ url }, { tenant }) => [{ action: "http.request", method: "GET", url, ...on(tenant) }] },
  async ({ url }, cap, { endowments, tenant }) => {
    const res = await endowments.http.request(cap, url, on(tenant));
    return { status: res.status, url: res.url, body: text(res.body) };
  },
);
