/**
 * Opening the SQLite file and bringing its schema up to date. Migrations are numbered `.sql` files in
 * `migrations/`, applied in order by `PRAGMA user_version`, each in one transaction (Signal Desktop's
 * scheme); a database newer than this code is refused rather than misread.
 */
import { chmodSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { Logger } from '../log.js';

export type Db = Database.Database;

/** How long a consumer's or a command's statement waits for another connection's lock before failing. */
export const BUSY_TIMEOUT_MS = 5_000;

/**
 * The daemon's busy timeout. better-sqlite3 is synchronous: while SQLite waits for a lock it holds the whole
 * event loop (AMQP lock renewals, HTTP timeouts, the watchdog). SQLite's busy handler sleeps 1, 2, 5, 10 ms…,
 * so 25 ms blocks the loop for about that at most; the daemon's writers retry asynchronously instead
 * (`whenWritable`), and a consumer holding the write lock for a minute delays writes, not the daemon.
 */
export const DAEMON_BUSY_TIMEOUT_MS = 25;

/**
 * The WAL is truncated back to this after a checkpoint that reached its end. It grows past it only while a
 * reader's transaction holds checkpoints back (or between two checkpoints of a very busy minute).
 */
export const WAL_LIMIT_BYTES = 64 * 1024 * 1024;

export class StoreError extends Error {
  override name = 'StoreError';
}

/**
 * SQLite's answers that a person must act on (permissions, a read-only directory, a file that is not a
 * database): restarting cannot fix them, so `run` exits 78 on them instead of 1 (CONTRACT §1).
 */
const OPERATOR_CODES = /^SQLITE_(CANTOPEN|READONLY|PERM|AUTH|NOTADB)/;

/** The database cannot be used until a person changes something: permissions, the file, the program. */
export class DatabaseSetupError extends StoreError {
  override name = 'DatabaseSetupError';
}

export function isSetupFault(err: unknown): boolean {
  if (err instanceof DatabaseSetupError) return true;
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (OPERATOR_CODES.test(code) || code === 'EACCES' || code === 'EROFS');
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

function findMigrationsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'migrations');
    if (existsSync(join(candidate, '0001_init.sql'))) return candidate;
    dir = dirname(dir);
  }
  throw new StoreError('cannot find the migrations directory next to the program');
}

const cached = new Map<string, Migration[]>();

/**
 * The main database's migrations (`migrations/`), the control database's (`migrations/control/`), or a
 * PostgreSQL schema's (`migrations/postgresql/`).
 */
export function migrations(which: 'main' | 'control' | 'postgresql' = 'main'): Migration[] {
  const known = cached.get(which);
  if (known) return known;
  const dir = which === 'main' ? findMigrationsDir() : join(findMigrationsDir(), which);
  const list = readdirSync(dir)
    .filter((f) => /^\d{4}_.+\.sql$/.test(f))
    .sort()
    .map((f, i) => {
      const version = Number(f.slice(0, 4));
      if (version !== i + 1) throw new StoreError(`migration ${f} is out of sequence (expected ${i + 1})`);
      return { version, name: f, sql: readFileSync(join(dir, f), 'utf8') };
    });
  cached.set(which, list);
  return list;
}

export function latestSchemaVersion(): number {
  return migrations().length;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Applies every migration the database lacks; returns the versions applied. */
export function migrate(db: Db, all: Migration[] = migrations()): number[] {
  const current = schemaVersion(db);
  if (current > all.length) {
    throw new DatabaseSetupError(
      `the database has schema version ${current}, newer than this zaptec-sync understands (${all.length}); ` +
        'upgrade zaptec-sync or use a database it created',
    );
  }
  const applied: number[] = [];
  for (const m of all.slice(current)) {
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
    applied.push(m.version);
  }
  return applied;
}

export interface OpenOptions {
  /** Create and migrate (the daemon, `migrate`); otherwise the file must exist. */
  create?: boolean;
  readonly?: boolean;
  /** A consumer writing `refresh_requests`: leaves the journal mode as the daemon set it. */
  consumer?: boolean;
  /** The daemon's connection: a short busy timeout, retried asynchronously by its writers. */
  daemon?: boolean;
}

/** The directory a new file goes into must exist: creating it is the operator's (or systemd's) to do. */
export function needDirectory(path: string): void {
  const dir = dirname(path);
  if (path !== ':memory:' && !existsSync(dir))
    throw new DatabaseSetupError(`cannot create ${path}: the directory ${dir} does not exist`);
}

/** Opens the database with the daemon's pragmas: WAL, synchronous=NORMAL, a busy timeout, foreign keys. */
export function openDatabase(path: string, options: OpenOptions = {}): Db {
  const isNew = !existsSync(path);
  if (isNew && !options.create) throw new StoreError(`no database at ${path}`);
  if (isNew) needDirectory(path);
  let db: Db;
  try {
    db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: !options.create });
  } catch (err) {
    const message = `cannot open the database at ${path}: ${(err as Error).message}`;
    throw isSetupFault(err) ? new DatabaseSetupError(message) : new StoreError(message);
  }
  try {
    configure(db, path, isNew, options);
  } catch (err) {
    db.close();
    if (!isSetupFault(err)) throw err;
    throw new DatabaseSetupError(`cannot use the database at ${path}: ${describeWriteError(err)}`);
  }
  return db;
}

function configure(db: Db, path: string, isNew: boolean, options: OpenOptions): void {
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  if (!options.readonly && !options.consumer) {
    if (isNew) {
      try {
        chmodSync(path, 0o640);
      } catch {}
    }
    db.pragma('journal_mode = WAL');
    // NORMAL: a commit is written to the WAL but not synced; what must survive a power cut (a live message's
    // observation before its completion, a budget record before its request) waits for WalSync's group commit,
    // an fsync off the event loop shared by every commit before it (durability.ts; FULL's cost in BENCHMARKS.md).
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    // 8 MiB of hot pages; the rest of the file is served by the kernel's page cache. At 10,000 chargers 8 MiB
    // cost no CPU against 32 MiB, and 2 MiB cost 75 % more CPU per observation (BENCHMARKS.md, footprint).
    db.pragma('cache_size = -8192');
    // Checkpoint every ~40 MiB of WAL instead of 4 MiB: a fleet's state rows are spread over many pages,
    // and rarer checkpoints write each hot page back once instead of many times (+30 % ingest).
    db.pragma('wal_autocheckpoint = 10000');
    db.pragma(`journal_size_limit = ${WAL_LIMIT_BYTES}`);
  }
  if (options.create) migrate(db);
  // Only now: opening and migrating happen before the daemon has anything else to serve.
  if (options.daemon) db.pragma(`busy_timeout = ${DAEMON_BUSY_TIMEOUT_MS}`);
}

/**
 * SQLite's `application_id` of a database that a daemon has kept for a real Zaptec account (an API that is
 * not on this machine): "ZSRA". `demo` refuses such a file, so a simulated fleet never lands in a real one.
 */
const REAL_ACCOUNT_ID = 0x5a535241;

export function markRealAccount(db: Db): void {
  if (db.pragma('application_id', { simple: true }) !== REAL_ACCOUNT_ID)
    db.pragma(`application_id = ${REAL_ACCOUNT_ID}`);
}

/** Whether a daemon has used the file at `path` for a real account (false when there is no such file). */
export function keptForRealAccount(path: string): boolean {
  if (!existsSync(path)) return false;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.pragma('application_id', { simple: true }) === REAL_ACCOUNT_ID;
  } finally {
    db.close();
  }
}

/**
 * Leaves the file readable by consumers that may not write its directory (CONTRACT §7): checkpoint,
 * switch to rollback-journal mode so no -wal/-shm is needed, and close.
 */
export function closeForReaders(db: Db): void {
  if (!db.open) return;
  try {
    // At the stop the event loop has nothing left to serve: wait for a reader's last statement to end.
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma('journal_mode = DELETE');
  } catch {
    // Another connection holds the file: WAL stays, and readers still work while it exists.
  }
  db.close();
}

/**
 * Watches the WAL's size (called with the heartbeat): past the limit, says once per doubling that a reader
 * is probably holding a transaction open, and says when it is back within the limit.
 */
export class WalWatch {
  readonly #path: string;
  readonly #log: Logger;
  #warnedAt = 0;

  constructor(db: Db, log: Logger) {
    this.#path = `${db.name}-wal`;
    this.#log = log;
  }

  check(): void {
    let size: number;
    try {
      size = statSync(this.#path).size;
    } catch {
      return; // no WAL (rollback-journal mode, or not created yet)
    }
    const mb = Math.round(size / 2 ** 20);
    if (size > WAL_LIMIT_BYTES && size >= 2 * this.#warnedAt) {
      this.#warnedAt = size;
      this.#log.warn(
        { walMb: mb, limitMb: WAL_LIMIT_BYTES / 2 ** 20 },
        'the database WAL keeps growing: a reader is probably holding a transaction open, and checkpoints wait for it to end',
      );
    } else if (size <= WAL_LIMIT_BYTES && this.#warnedAt > 0) {
      this.#warnedAt = 0;
      this.#log.info({ walMb: mb }, 'the database WAL is back within its limit');
    }
  }
}

/** A failed database write in words an operator can act on (the SQLite code kept at the end). */
export function describeWriteError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_FULL') return `the disk or the database is full (${code})`;
  if (typeof code === 'string' && code.startsWith('SQLITE_IOERR'))
    return `cannot write the database file: the disk may be full or failing (${code}: ${message})`;
  if (code === 'SQLITE_BUSY') return `another connection holds the database's write lock (${code})`;
  return message;
}
