/**
 * Connections to a PostgreSQL store (CONTRACT §9): `pg`'s pool, every session in UTC with search_path set to
 * the account's schema. Rows come back in the shape SQLite gives the code that reads both stores with one
 * query: times as ISO-8601 UTC strings with milliseconds, flags as 0/1, bigints as numbers, jsonb as its text.
 * Consumers that open PostgreSQL themselves see its own types.
 */
import pg from 'pg';
import type { PostgresLocation } from '../../config.js';
import { describeError, registerSecret } from '../../log.js';
import { DatabaseSetupError } from '../database.js';

export type PgPool = pg.Pool;

const { builtins } = pg.types;
const timestamptz = pg.types.getTypeParser(builtins.TIMESTAMPTZ);

/** The parsers that make a row look as SQLite's would (see above); every other type as `pg` parses it. */
const sqliteShaped: Record<number, (text: string) => unknown> = {
  [builtins.TIMESTAMPTZ]: (text) => (timestamptz(text) as Date).toISOString(),
  [builtins.BOOL]: (text) => (text === 't' ? 1 : 0),
  [builtins.INT8]: Number,
  [builtins.JSONB]: (text) => text,
  [builtins.JSON]: (text) => text,
};

const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    sqliteShaped[oid] ?? pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** The URL as people may see it: no password (ZAPTEC_DB's own was taken out when it was read). */
export function describeLocation(location: PostgresLocation): string {
  return `${location.url.replace(/\/$/, '')} (schema ${location.schema})`;
}

/**
 * The URL `pg` connects with: pg takes the connection string's fields over its own options, so the password
 * (kept apart from ZAPTEC_DB, and never logged) goes back into the URL here.
 */
export function connectionString(location: PostgresLocation): string {
  registerSecret(location.password);
  const url = new URL(location.url);
  if (location.password !== undefined) url.password = encodeURIComponent(location.password);
  return url.toString();
}

export function openPool(
  location: PostgresLocation,
  options: { max?: number; name?: string; idleInTransactionMs?: number } = {},
): PgPool {
  const idle = options.idleInTransactionMs
    ? ` -c idle_in_transaction_session_timeout=${options.idleInTransactionMs}`
    : '';
  const pool = new pg.Pool({
    connectionString: connectionString(location),
    options: `-c search_path=${location.schema} -c TimeZone=UTC${idle}`,
    application_name: options.name ?? 'zaptec-sync',
    max: options.max ?? 4,
    connectionTimeoutMillis: 10_000,
    types,
  });
  // An idle client's error (the server restarted, the network went) must not take the process down; the next
  // query gets a new connection and reports its own error.
  pool.on('error', () => {});
  return pool;
}

/**
 * `work` in one transaction on a connection of the pool: committed when it returns, rolled back (and its error
 * thrown) when it throws; the connection goes back to the pool either way.
 */
export async function inTransaction<T>(
  pool: PgPool,
  work: (client: pg.PoolClient) => Promise<T>,
  begin = 'BEGIN',
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(begin);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/**
 * PostgreSQL's answers that a person must act on (CONTRACT §1, exit 78): a refused password or user, a
 * database that does not exist, a privilege not granted. A server that is down or restarting is not one.
 */
const SETUP_CODES = new Set(['28P01', '28000', '3D000', '42501', '3F000']);

/** The error as one line naming the store; a setup fault becomes a DatabaseSetupError. */
export function storeFault(location: PostgresLocation, err: unknown): Error {
  if (err instanceof DatabaseSetupError) return err;
  const code = (err as { code?: unknown }).code;
  const message = `PostgreSQL at ${describeLocation(location)}: ${describeError(err)}`;
  return typeof code === 'string' && SETUP_CODES.has(code)
    ? new DatabaseSetupError(message)
    : new Error(message);
}
