import { databasePath, environment } from '../config.js';
import { latestSchemaVersion, migrate, openDatabase, schemaVersion } from '../store/database.js';
import { parseCommandArgs } from './args.js';

/** `migrate`: create or upgrade the database; idempotent; prints the schema version. */
export async function migrateCommand(args: string[], envFile: string | undefined): Promise<number> {
  parseCommandArgs(args, {}, 0);
  const path = databasePath(environment(envFile));
  const db = openDatabase(path, { create: true });
  try {
    const applied = migrate(db);
    const version = schemaVersion(db);
    process.stdout.write(
      applied.length > 0
        ? `${path}: schema version ${version} (applied ${applied.join(', ')})\n`
        : `${path}: schema version ${version} (up to date; this zaptec-sync knows ${latestSchemaVersion()})\n`,
    );
    return 0;
  } finally {
    db.pragma('journal_mode = DELETE');
    db.close();
  }
}
