/**
 * Consumers ask through PostgreSQL (CONTRACT §9, §10): they INSERT into `refresh_requests` and `commands` of
 * the schema. The active daemon takes each open row into its working copy's control file, through a
 * connection of its own, so that the daemon sees it as SQLite's consumers' rows are seen (`data_version`
 * moves) and answers it there; the Replicator carries the answer back. Rows already taken are left alone:
 * the copy's row is the one the daemon works on.
 */

import type { Statement } from 'better-sqlite3';
import { describeError, type Logger } from '../../log.js';
import { delay } from '../../time.js';
import type { Db } from '../database.js';
import type { PgPool } from './pool.js';
import { type CarriedTable, quote, type WorkingCopy } from './working-copy.js';

/** How often the schema is looked at: requests are answered within 5 s (CONTRACT §3, §10). */
const PULL_EVERY_MS = 500;

const OPEN: Record<string, string> = {
  refresh_requests: 'handled_at IS NULL',
  commands: "status = 'pending'",
};

/** A table consumers ask through, with what the puller needs of it, prepared once. */
interface Asked {
  table: CarriedTable;
  /** The open rows in PostgreSQL. */
  select: string;
  known: Statement;
  insert: Statement;
}

export class RequestPuller {
  readonly #pool: PgPool;
  readonly #log: Logger;
  readonly #writer: Db;
  readonly #asked: Asked[];
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #failing = false;

  constructor(o: { copy: WorkingCopy; pool: PgPool; schema: string; log: Logger }) {
    this.#pool = o.pool;
    this.#log = o.log;
    this.#writer = o.copy.openControlWriter();
    this.#asked = o.copy.tables
      .filter((t) => t.name in OPEN)
      .map((t) => {
        const cols = t.columns.map(quote).join(', ');
        return {
          table: t,
          select: `SELECT ${cols} FROM ${o.schema}.${t.name} WHERE ${OPEN[t.name]} ORDER BY id`,
          known: this.#writer.prepare(`SELECT 1 FROM ${t.name} WHERE id = ?`),
          insert: this.#writer.prepare(
            `INSERT OR IGNORE INTO ${t.name} (${cols}) VALUES (${t.columns.map(() => '?').join(', ')})`,
          ),
        };
      });
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    this.#writer.close();
  }

  /** One look: every open row of the schema that the copy does not have yet goes into it. */
  async pull(): Promise<void> {
    for (const { table, select, known, insert } of this.#asked) {
      const r = await this.#pool.query<Record<string, unknown>>(select);
      if (this.#stop.signal.aborted) return;
      const fresh = r.rows.filter((row) => known.get(row.id) === undefined);
      if (fresh.length === 0) continue;
      this.#writer.transaction(() => {
        for (const row of fresh) insert.run(...table.columns.map((c) => row[c]));
      })();
    }
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        await this.pull();
        if (this.#failing) this.#log.info('consumers’ requests are read from PostgreSQL again');
        this.#failing = false;
      } catch (err) {
        if (!this.#failing)
          this.#log.error(
            { err: describeError(err) },
            'cannot read consumers’ requests from PostgreSQL; tried again every 500 ms',
          );
        this.#failing = true;
      }
      await delay(PULL_EVERY_MS, signal).catch(() => {});
    }
  }
}
