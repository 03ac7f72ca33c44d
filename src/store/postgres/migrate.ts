/**
 * A PostgreSQL schema's migrations (`migrations/postgresql/`), forward only, each in one transaction with the
 * version it brings; concurrent `migrate`s and daemons of one schema wait for each other (an advisory lock).
 * Then the grants of the two documented roles (CONTRACT §9; OPERATIONS.md): `<schema>_read` may SELECT every
 * object, `<schema>_control` also INSERT into refresh_requests and commands; neither may change anything else.
 */
import type pg from 'pg';
import { DatabaseSetupError, migrations } from '../database.js';
import { inTransaction, type PgPool } from './pool.js';

export interface PgMigrateResult {
  version: number;
  applied: number[];
  /** Roles that could not be created (the user lacks CREATEROLE): OPERATIONS.md says how to make them. */
  missingRoles: string[];
}

export function pgRoles(schema: string): { read: string; control: string } {
  return { read: `${schema}_read`, control: `${schema}_control` };
}

export function latestPgSchemaVersion(): number {
  return migrations('postgresql').length;
}

/** The schema's version: 0 when it (or its version table) does not exist yet. */
export async function pgSchemaVersion(client: pg.ClientBase | PgPool, schema: string): Promise<number> {
  // Two statements: one that names a table which does not exist fails when it is planned, CASE or not.
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [
    `${schema}.schema_version`,
  ]);
  if (!exists.rows[0]?.t) return 0;
  const r = await client.query<{ version: number }>(`SELECT version FROM ${schema}.schema_version`);
  return Number(r.rows[0]?.version ?? 0);
}

export async function migratePostgres(pool: PgPool, schema: string): Promise<PgMigrateResult> {
  const all = migrations('postgresql');
  return inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`zaptec-sync migrate ${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${schema}.schema_version (version integer NOT NULL)`);
    await client.query(
      `INSERT INTO ${schema}.schema_version (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM ${schema}.schema_version)`,
    );
    const current = await pgSchemaVersion(client, schema);
    if (current > all.length)
      throw new DatabaseSetupError(
        `the schema ${schema} has version ${current}, newer than this zaptec-sync understands (${all.length}); ` +
          'upgrade zaptec-sync or use a schema it created',
      );
    const applied: number[] = [];
    for (const m of all.slice(current)) {
      await client.query(`SET LOCAL search_path TO ${schema}`);
      await client.query(m.sql);
      await client.query(`UPDATE ${schema}.schema_version SET version = $1`, [m.version]);
      applied.push(m.version);
    }
    const missingRoles = await grant(client, schema);
    return { version: all.length, applied, missingRoles };
  });
}

/** Creates the two roles where they are missing (and may be made), and grants them what they may do. */
async function grant(client: pg.ClientBase, schema: string): Promise<string[]> {
  const roles = pgRoles(schema);
  const missing: string[] = [];
  for (const role of [roles.read, roles.control]) {
    const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (exists.rowCount) continue;
    await client.query('SAVEPOINT role');
    try {
      await client.query(`CREATE ROLE ${role} NOLOGIN`);
      await client.query('RELEASE SAVEPOINT role');
    } catch (err) {
      await client.query('ROLLBACK TO SAVEPOINT role');
      if ((err as { code?: string }).code !== '42501') throw err;
      missing.push(role);
    }
  }
  const present = [roles.read, roles.control].filter((r) => !missing.includes(r));
  if (present.length === 0) return missing;
  const to = present.join(', ');
  await client.query(`GRANT USAGE ON SCHEMA ${schema} TO ${to}`);
  await client.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${schema} TO ${to}`);
  if (!missing.includes(roles.control)) {
    await client.query(`GRANT INSERT ON ${schema}.refresh_requests, ${schema}.commands TO ${roles.control}`);
    await client.query(
      `GRANT USAGE ON SEQUENCE ${schema}.refresh_requests_id_seq, ${schema}.commands_id_seq TO ${roles.control}`,
    );
  }
  return missing;
}
