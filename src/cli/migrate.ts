import {
  controlDatabasePath,
  databasePath,
  environment,
  type PostgresLocation,
  postgresLocation,
} from '../config.js';
import { attachControl, detachControl } from '../store/control.js';
import { latestSchemaVersion, migrate, openDatabase, schemaVersion } from '../store/database.js';
import { migratePostgres, pgRoles } from '../store/postgres/migrate.js';
import { describeLocation, openPool, storeFault } from '../store/postgres/pool.js';
import { parseCommandArgs } from './args.js';

/**
 * `migrate`: creates or upgrades the database and its control database (CONTRACT §10); idempotent; prints the
 * schema versions.
 */
export async function migrateCommand(args: string[], envFile: string | undefined): Promise<number> {
  parseCommandArgs(args, {}, 0);
  const env = environment(envFile);
  const pg = postgresLocation(env);
  if (pg) return migratePostgresCommand(pg);
  const path = databasePath(env);
  const controlPath = controlDatabasePath(env);
  const db = openDatabase(path, { create: true });
  try {
    const applied = migrate(db);
    const version = schemaVersion(db);
    attachControl(db, controlPath);
    const control = db.pragma('control.user_version', { simple: true }) as number;
    process.stdout.write(
      applied.length > 0
        ? `${path}: schema version ${version} (applied ${applied.join(', ')})\n`
        : `${path}: schema version ${version} (up to date; this zaptec-sync knows ${latestSchemaVersion()})\n`,
    );
    process.stdout.write(`${controlPath}: control schema version ${control}\n`);
    return 0;
  } finally {
    detachControl(db);
    db.pragma('journal_mode = DELETE');
    db.close();
  }
}

/** `migrate` against PostgreSQL: the schema, its version, and the two roles' grants (CONTRACT §9). */
async function migratePostgresCommand(location: PostgresLocation): Promise<number> {
  const pool = openPool(location, { max: 1, name: 'zaptec-sync migrate' });
  try {
    const r = await migratePostgres(pool, location.schema).catch((err: unknown) => {
      throw storeFault(location, err);
    });
    const where = describeLocation(location);
    process.stdout.write(
      r.applied.length > 0
        ? `${where}: schema version ${r.version} (applied ${r.applied.join(', ')})\n`
        : `${where}: schema version ${r.version} (up to date)\n`,
    );
    const roles = pgRoles(location.schema);
    for (const [role, may] of [
      [roles.read, 'may read every object'],
      [roles.control, 'may also ask: INSERT into refresh_requests and commands'],
    ] as const)
      process.stdout.write(
        r.missingRoles.includes(role)
          ? `role ${role}: not created (this user may not create roles; OPERATIONS.md says how)\n`
          : `role ${role}: ${may}\n`,
      );
    return 0;
  } finally {
    await pool.end();
  }
}
