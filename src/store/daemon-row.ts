/** The one `daemon` row: who runs, since when, and whether it is alive (heartbeat). */
import { isoMs } from '../time.js';
import type { Db } from './database.js';
import { schemaVersion } from './database.js';

export interface DaemonRow {
  version: string;
  pid: number | null;
  started_at: string | null;
  heartbeat_at: string | null;
  stopped_at: string | null;
  inventory_refreshed_at: string | null;
  next_inventory_at: string | null;
  constants_refreshed_at: string | null;
  schema_version: number;
  /** Long work under way (schema 6). */
  progress?: string | null;
}

export function readDaemonRow(db: Db): DaemonRow | undefined {
  return db.prepare<[], DaemonRow>('SELECT * FROM daemon WHERE id = 1').get();
}

export class DaemonRecord {
  readonly #db: Db;
  readonly #heartbeat;
  readonly #clearProblems;
  readonly #addProblem;

  /** The store's schema version for the row: the file's own unless given (PostgreSQL's, for its working copy). */
  readonly #schema: number | undefined;

  constructor(db: Db, schema?: number) {
    this.#db = db;
    this.#schema = schema;
    this.#heartbeat = db.prepare('UPDATE daemon SET heartbeat_at = ?, progress = ? WHERE id = 1');
    this.#clearProblems = db.prepare('DELETE FROM daemon_problems');
    this.#addProblem = db.prepare('INSERT INTO daemon_problems (key, sentence, since) VALUES (?, ?, ?)');
  }

  started(version: string, pid: number, now: number): void {
    const at = isoMs(now);
    this.#clearProblems.run();
    this.#db
      .prepare(
        `INSERT INTO daemon (id, version, pid, started_at, heartbeat_at, stopped_at, schema_version)
         VALUES (1, @version, @pid, @at, @at, NULL, @schema)
         ON CONFLICT (id) DO UPDATE SET version = @version, pid = @pid, started_at = @at, heartbeat_at = @at,
           stopped_at = NULL, schema_version = @schema`,
      )
      .run({ version, pid, at, schema: this.#schema ?? schemaVersion(this.#db) });
  }

  /** The heartbeat and the daemon's current problems, in one transaction. */
  heartbeat(
    now: number,
    problems: readonly { key: string; sentence: string; since: number }[] = [],
    progress?: string,
  ): void {
    this.#db.transaction(() => {
      this.#heartbeat.run(isoMs(now), progress ?? null);
      this.#clearProblems.run();
      for (const p of problems) this.#addProblem.run(p.key, p.sentence, isoMs(p.since));
    })();
  }

  stopped(now: number): void {
    this.#db
      .prepare('UPDATE daemon SET stopped_at = ?, heartbeat_at = ?, progress = NULL WHERE id = 1')
      .run(isoMs(now), isoMs(now));
  }

  inventory(refreshedAt: number | undefined, nextAt: number | undefined): void {
    this.#db
      .prepare(
        'UPDATE daemon SET inventory_refreshed_at = coalesce(?, inventory_refreshed_at), next_inventory_at = ? WHERE id = 1',
      )
      .run(
        refreshedAt === undefined ? null : isoMs(refreshedAt),
        nextAt === undefined ? null : isoMs(nextAt),
      );
  }

  constantsRefreshed(now: number): void {
    this.#db.prepare('UPDATE daemon SET constants_refreshed_at = ? WHERE id = 1').run(isoMs(now));
  }

  read(): DaemonRow | undefined {
    return readDaemonRow(this.#db);
  }
}
