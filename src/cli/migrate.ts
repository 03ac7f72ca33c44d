import { controlDatabasePath, databasePath, environment } from '../config.js';
import { attachControl, detachControl } from '../store/control.js';
import { latestSchemaVersion, migrate, openDatabase, schemaVersion } from '../store/database.js';
import { parseCommandArgs } from './args.js';

/**
 * `migrate`: creates or upgrades the database and its control database (CONTRACT §10); idempotent; prints the
 * schema versions.
 */
export async function migrateCommand(args: string[], envFile: string | undefined): Promise<number> {
  parseCommandArgs(args, {}, 0);
  const env = environment(envFile);
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
