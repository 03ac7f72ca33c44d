/**
 * `refresh_requests`, in the control database (CONTRACT §10): consumers insert, the daemon answers within 5 s
 * (CONTRACT §3, §7). `insertRefreshRequest`/`readRefreshRequest` take a connection to the control file itself;
 * `RefreshRequestStore` the daemon's connection, where it is attached as `control`.
 */
import { isoMs } from '../time.js';
import type { Db } from './database.js';
import type { Sql } from './reader.js';

export type RefreshOutcome = 'found' | 'not_found' | 'refreshed' | 'deferred' | 'failed';

export interface RefreshRequestRow {
  id: number;
  charger: string | null;
  requested_at: string;
  handled_at: string | null;
  outcome: RefreshOutcome | null;
  detail: string | null;
}

/** Outcomes after which a request is done; `deferred` is not one of them. */
export const FINAL_OUTCOMES: ReadonlySet<RefreshOutcome> = new Set([
  'found',
  'not_found',
  'refreshed',
  'failed',
]);

/** A consumer's refresh request, in either store; its id. */
export async function insertRefreshRequest(db: Sql, charger: string | null): Promise<number> {
  const r = await db.get<{ id: number }>(
    'INSERT INTO refresh_requests (charger) VALUES (?) RETURNING id',
    charger,
  );
  return Number(r!.id);
}

export function readRefreshRequest(db: Sql, id: number): Promise<RefreshRequestRow | undefined> {
  return db.get<RefreshRequestRow>('SELECT * FROM refresh_requests WHERE id = ?', id);
}

export class RefreshRequestStore {
  readonly #open;
  readonly #answer;
  readonly #dataVersion;

  constructor(db: Db) {
    // Prepared once: db.pragma() prepares its statement on every call, and this runs every 2 s for months.
    this.#dataVersion = db.prepare<[], number>('PRAGMA control.data_version').pluck();
    this.#open = db.prepare<[number], RefreshRequestRow>(
      'SELECT * FROM control.refresh_requests WHERE handled_at IS NULL AND id > ? ORDER BY id LIMIT 500',
    );
    this.#answer = db.prepare(
      'UPDATE control.refresh_requests SET outcome = ?, detail = ?, handled_at = ? WHERE id = ? AND handled_at IS NULL',
    );
  }

  /** Unhandled requests with an id above `afterId` (the partial index keeps this cheap). */
  open(afterId = 0): RefreshRequestRow[] {
    return this.#open.all(afterId);
  }

  /** Writes an outcome; `deferred` leaves `handled_at` NULL so the request stays open. */
  answer(id: number, outcome: RefreshOutcome, detail: string | null, now: number): void {
    this.#answer.run(outcome, detail, FINAL_OUTCOMES.has(outcome) ? isoMs(now) : null, id);
  }

  /** The database's change counter: it moves when another connection commits (PRAGMA data_version). */
  dataVersion(): number {
    return this.#dataVersion.get()!;
  }
}
