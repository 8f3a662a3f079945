import { randomBytes } from "node:crypto";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { describe } from "vitest";

/*
 * Postgres for tests: the server named by DATABASE_URL (CI sets it to
 * postgres://postgres@127.0.0.1:5432/test). Each run gets a schema of its own
 * with a random name, and drops it afterwards, so concurrent runs never see
 * each other's rows.
 */

/** The server the Postgres tests use, or undefined when DATABASE_URL is unset (or empty) and they are to be skipped. */
export const databaseUrl: string | undefined = process.env.DATABASE_URL === "" ? undefined : process.env.DATABASE_URL;

/** Why the Postgres tests are skipped, or null when they run. */
export const postgresSkipReason: string | null =
  databaseUrl === undefined ? "DATABASE_URL is unset; set it (e.g. postgres://postgres@127.0.0.1:5432/test) to run the Postgres tests" : null;

// In CI a skipped Postgres suite would look like a pass: refuse to run without the database there.
if (postgresSkipReason !== null && (process.env.CI ?? "") !== "" && process.env.CI !== "false") {
  throw new Error(`CI is set but ${postgresSkipReason}`);
}

/** `describe` for a suite that needs Postgres: reported as skipped, with the reason in its name, when there is none. */
export function describePostgres(name: string, body: () => void): void {
  describe.skipIf(postgresSkipReason !== null)(postgresSkipReason === null ? name : `${name} (skipped: ${postgresSkipReason})`, body);
}

/** A schema created for one test run. */
export interface TestSchema {
  readonly name: string;
  /** A pool whose connections resolve unqualified names in this schema. */
  readonly pool: pg.Pool;
  /** Ends the pool and drops the schema with everything in it. */
  drop(): Promise<void>;
}

async function asAdmin(url: string, work: (db: Kysely<unknown>) => Promise<void>): Promise<void> {
  const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) });
  try {
    await work(db);
  } finally {
    await db.destroy();
  }
}

/** Creates a uniquely named schema on the server at `url`, and a pool that uses it. */
export async function createTestSchema(url: string): Promise<TestSchema> {
  const name = `agentcap_test_${randomBytes(8).toString("hex")}`;
  await asAdmin(url, (db) => db.schema.createSchema(name).execute());
  // The name is generated above from hex digits only, so it is safe inside the connection option.
  const pool = new pg.Pool({ connectionString: url, options: `-c search_path=${name}` });
  return {
    name,
    pool,
    drop: async () => {
      await pool.end();
      await asAdmin(url, (db) => db.schema.dropSchema(name).cascade().execute());
    },
  };
}
