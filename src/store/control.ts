/**
 * The control database (CONTRACT §10): a SQLite file of its own (ZAPTEC_CONTROL_DB, `control.db` beside the
 * main database by default) where consumers ask for things: `refresh_requests` and `commands`. The daemon
 * attaches it to its connection as `control`; the main database can then be read-only to every consumer, and
 * only those who may write this file can ask for anything. It has its own schema version (`PRAGMA
 * user_version` of the file) and migrations (`migrations/control/`).
 */
import { chmodSync, existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import {
  BUSY_TIMEOUT_MS,
  DatabaseSetupError,
  type Db,
  isSetupFault,
  migrate,
  migrations,
  needDirectory,
  StoreError,
} from './database.js';

/** Creates the control file if need be and brings its schema up to date, on a connection of its own. */
export function prepareControl(path: string): void {
  const isNew = !existsSync(path);
  if (isNew) needDirectory(path);
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (err) {
    const message = `cannot open the control database at ${path}: ${(err as Error).message}`;
    throw isSetupFault(err) ? new DatabaseSetupError(message) : new StoreError(message);
  }
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (isNew) {
      try {
        // Group-writable: those who may ask (the control group, CONTRACT §10) write it; nobody else.
        chmodSync(path, 0o660);
      } catch {}
    }
    db.pragma('journal_mode = WAL');
    migrate(db, migrations('control'));
  } catch (err) {
    if (!isSetupFault(err)) throw err;
    throw new DatabaseSetupError(`cannot use the control database at ${path}: ${(err as Error).message}`);
  } finally {
    db.close();
  }
}

/**
 * Attaches the control database to the daemon's connection as `control`, creating it first, and moves the
 * refresh requests still open in the main database there (schema 7 moved the table; done once, in one
 * transaction, then the old table is dropped).
 */
export function attachControl(db: Db, path: string): void {
  const attached = (db.pragma('database_list') as { name: string }[]).some((d) => d.name === 'control');
  if (attached) return;
  prepareControl(path);
  db.prepare('ATTACH DATABASE ? AS control').run(path);
  // The daemon's writes to the control file are as durable as to the main file.
  db.pragma('control.synchronous = NORMAL');
  const old = db
    .prepare("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'refresh_requests'")
    .get();
  if (!old) return;
  db.transaction(() => {
    db.exec(`INSERT INTO control.refresh_requests (charger, requested_at, handled_at, outcome, detail)
             SELECT charger, requested_at, handled_at, outcome, detail FROM main.refresh_requests
             WHERE handled_at IS NULL ORDER BY id`);
    db.exec('DROP TABLE main.refresh_requests');
  })();
}

/** The control database for a consumer or a CLI command: it must exist (the daemon creates it). */
export function openControl(path: string, options: { readonly?: boolean } = {}): Db {
  if (!existsSync(path)) throw new StoreError(`no control database at ${path}`);
  let db: Db;
  try {
    db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: true });
  } catch (err) {
    throw new StoreError(`cannot open the control database at ${path}: ${(err as Error).message}`);
  }
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  return db;
}

/** On a clean stop: the control file in rollback-journal mode too, and detached. */
export function detachControl(db: Db): void {
  if (!db.open) return;
  try {
    db.pragma('control.wal_checkpoint(TRUNCATE)');
    db.pragma('control.journal_mode = DELETE');
  } catch {
    // Another connection has it open: WAL stays, which its readers and writers handle.
  }
}
