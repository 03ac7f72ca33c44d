/**
 * One daemon per database (CONTRACT §7): `run` owns a SQLite database by holding an exclusive lock on a
 * small SQLite file beside it (`<db>-owner`). The lock is the kernel's (SQLite's POSIX advisory lock), so it
 * ends with the process however the process ends: a SIGKILLed owner leaves a file that blocks nobody, and
 * there is never a stale lock for a person to remove. The file is never deleted either: deleting a lock file
 * that another process has open is how two processes end up "holding" one lock.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { DatabaseSetupError, isSetupFault, needDirectory, StoreError } from './database.js';
import { isBusy } from './writable.js';

/**
 * How long a starting `run` waits for the owner to let go: a restart (systemd's, or a person's) may start the
 * new process while the old one is still in its stop, which takes at most 10 s. CONTRACT §7 allows 15 s.
 */
export const OWNER_WAIT_MS = 11_000;
const OWNER_RETRY_MS = 250;

/**
 * The file whose lock says who owns the database: beside the real file, so that two daemons given two paths to
 * one database (a symbolic link, `./z.db` and `/srv/z.db`) still meet at one lock.
 */
export function ownerLockPath(dbPath: string): string {
  let real = resolve(dbPath);
  try {
    real = realpathSync(dbPath);
  } catch {
    try {
      real = join(realpathSync(dirname(dbPath)), basename(dbPath));
    } catch {}
  }
  return `${real}-owner`;
}

export class DatabaseOwned extends Error {
  override name = 'DatabaseOwned';
}

/** The ownership of one database, held until release() or the end of the process. */
export class OwnerLock {
  readonly #db: Database.Database;

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  /** Takes the lock at once, or throws DatabaseOwned while another process holds it. */
  static tryAcquire(dbPath: string): OwnerLock {
    const path = ownerLockPath(dbPath);
    needDirectory(path);
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (err) {
      const message = `cannot open ${path}: ${(err as Error).message}`;
      throw isSetupFault(err) ? new DatabaseSetupError(message) : new StoreError(message);
    }
    try {
      // No busy wait inside SQLite: it would hold the event loop. acquire() retries asynchronously.
      db.pragma('busy_timeout = 0');
      db.pragma('journal_mode = DELETE');
      // EXCLUSIVE locking mode: the lock a write takes is kept until the connection closes.
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('CREATE TABLE IF NOT EXISTS owner (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER)');
      db.prepare(
        'INSERT INTO owner (id, pid) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid',
      ).run(process.pid);
      return new OwnerLock(db);
    } catch (err) {
      db.close();
      if (isBusy(err)) throw new DatabaseOwned(`${path} is locked by another process`);
      const message = `cannot lock ${path}: ${(err as Error).message}`;
      throw isSetupFault(err) ? new DatabaseSetupError(message) : new StoreError(message);
    }
  }

  /**
   * Takes the lock, waiting up to `waitMs` for an owner in its stop to let go; DatabaseOwned after that. The
   * wait ends early when `signal` aborts (a SIGTERM during start-up), with undefined.
   */
  static async acquire(
    dbPath: string,
    sleep: (ms: number) => Promise<void>,
    options: { waitMs?: number; signal?: AbortSignal } = {},
  ): Promise<OwnerLock | undefined> {
    const waitMs = options.waitMs ?? OWNER_WAIT_MS;
    for (let waited = 0; ; waited += OWNER_RETRY_MS) {
      if (options.signal?.aborted) return undefined;
      try {
        return OwnerLock.tryAcquire(dbPath);
      } catch (err) {
        if (!(err instanceof DatabaseOwned) || waited >= waitMs) throw err;
      }
      await sleep(OWNER_RETRY_MS);
    }
  }

  release(): void {
    if (this.#db.open) this.#db.close();
  }
}
