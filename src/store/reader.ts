/**
 * The store as the commands that read see it (`status`, `state`, `sessions`, and `--wait` of those that ask):
 * one SQL text for both stores, with `?` parameters and rows in SQLite's shape (PostgreSQL's parsers in
 * pool.ts give times as ISO strings, flags as 0/1). The SQL keeps to what both understand: ids compared as
 * stored (lower case) or through lower(), flags tested by themselves (`WHERE c.active`), times compared with
 * ISO-8601 parameters.
 */
import { existsSync } from 'node:fs';
import { controlDatabasePath, databasePath, type Env, postgresLocation } from '../config.js';
import { openControl } from './control.js';
import { type Db, openDatabase } from './database.js';
import type { ChargerRow } from './inventory.js';
import { describeLocation, openPool, type PgPool, storeFault } from './postgres/pool.js';

export interface Sql {
  all<T>(sql: string, ...params: unknown[]): Promise<T[]>;
  get<T>(sql: string, ...params: unknown[]): Promise<T | undefined>;
  /** Whether a table or view exists (a SQLite file of an older schema lacks some). */
  has(name: string): Promise<boolean>;
}

export interface Reader extends Sql {
  readonly kind: 'sqlite' | 'postgresql';
  /** Where it is, for messages (never a password). */
  readonly where: string;
  /**
   * Where consumers' requests are: the control database beside a SQLite file (undefined when there is none
   * or this user may not read it), the same schema in PostgreSQL.
   */
  readonly control: Sql | undefined;
  close(): Promise<void>;
}

class SqliteSql implements Sql {
  readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }
  async all<T>(sql: string, ...params: unknown[]): Promise<T[]> {
    return this.db.prepare(sql).all(...params) as T[];
  }
  async get<T>(sql: string, ...params: unknown[]): Promise<T | undefined> {
    return this.db.prepare(sql).get(...params) as T | undefined;
  }
  async has(name: string): Promise<boolean> {
    return this.db.prepare('SELECT 1 FROM sqlite_master WHERE name = ?').get(name) !== undefined;
  }
}

/** A SQLite connection as `Sql` (the connection stays the caller's to close). */
export function sqliteSql(db: Db): Sql {
  return new SqliteSql(db);
}

/** `?` to `$1`, `$2`…: the SQL shared by both stores has no `?` inside its string literals. */
export function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

class PgSql implements Sql {
  readonly pool: PgPool;
  readonly schema: string;
  readonly fault: (err: unknown) => Error;
  constructor(pool: PgPool, schema: string, fault: (err: unknown) => Error) {
    this.pool = pool;
    this.schema = schema;
    this.fault = fault;
  }
  async all<T>(sql: string, ...params: unknown[]): Promise<T[]> {
    try {
      return (await this.pool.query(numbered(sql), params)).rows as T[];
    } catch (err) {
      throw this.fault(err);
    }
  }
  async get<T>(sql: string, ...params: unknown[]): Promise<T | undefined> {
    return (await this.all<T>(sql, ...params))[0];
  }
  async has(name: string): Promise<boolean> {
    return (
      (await this.get('SELECT 1 AS one WHERE to_regclass(?) IS NOT NULL', `${this.schema}.${name}`)) !==
      undefined
    );
  }
}

/**
 * Opens the store ZAPTEC_DB names, to read: undefined (after one line on stderr) when it is a SQLite file that
 * does not exist, or a PostgreSQL schema `migrate` has not made; a command that only reads never creates one.
 */
export async function openReader(env: Env, command: string): Promise<Reader | undefined> {
  const pg = postgresLocation(env);
  if (pg) {
    const pool = openPool(pg, { max: 1, name: `zaptec-sync ${command}` });
    const sql = new PgSql(pool, pg.schema, (err) => storeFault(pg, err));
    const where = describeLocation(pg);
    try {
      if (!(await sql.has('daemon'))) {
        process.stderr.write(`zaptec-sync ${command}: no zaptec-sync schema at ${where} (run migrate)\n`);
        await pool.end();
        return undefined;
      }
    } catch (err) {
      await pool.end();
      throw err;
    }
    return Object.assign(sql, {
      kind: 'postgresql' as const,
      where,
      control: sql,
      close: () => pool.end(),
    });
  }
  const path = databasePath(env);
  if (!existsSync(path)) {
    process.stderr.write(`zaptec-sync ${command}: no database at ${path} (has the daemon run?)\n`);
    return undefined;
  }
  const db = openDatabase(path, { readonly: true });
  const controlPath = controlDatabasePath(env);
  let control: Db | undefined;
  try {
    control = existsSync(controlPath) ? openControl(controlPath, { readonly: true }) : undefined;
  } catch {} // a control file this user may not read: nothing to tell from it
  return Object.assign(new SqliteSql(db), {
    kind: 'sqlite' as const,
    where: path,
    control: control ? new SqliteSql(control) : undefined,
    close: async () => {
      db.close();
      control?.close();
    },
  });
}

/** A charger by id or serial, case-insensitively; the active one first where a serial moved. */
export function findCharger(db: Sql, idOrSerial: string): Promise<ChargerRow | undefined> {
  return db.get<ChargerRow>(
    `SELECT id, installation_id, circuit_id, device_id, name, device_type, active FROM chargers
     WHERE id = lower(?) OR lower(device_id) = lower(?) ORDER BY active DESC LIMIT 1`,
    idOrSerial,
    idOrSerial,
  );
}
