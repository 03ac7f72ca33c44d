/** The budget's ledger in SQLite: `api_requests`, `api_blocks`, `api_windows` and `state_reads`. */
import type { BudgetLedger, LedgerPause, LedgerWindow } from '../budget-ledger.js';
import { WINDOW_USED_SQL } from '../budget-ledger.js';
import type { Db } from '../database.js';
import { isBusy } from '../writable.js';

export class SqliteBudgetLedger implements BudgetLedger {
  readonly #db: Db;
  readonly #insert;
  readonly #count;
  readonly #nth;
  readonly #recent;
  readonly #block;
  readonly #settle;
  readonly #refund;
  readonly #lastRead;
  readonly #markRead;
  readonly #readOf;

  constructor(db: Db) {
    this.#db = db;
    this.#insert = db.prepare('INSERT INTO api_requests (grp, at_ms, method, path) VALUES (?, ?, ?, ?)');
    this.#count = db.prepare<[string, number], { n: number }>(WINDOW_USED_SQL);
    this.#nth = db.prepare<[string, number, number], { at_ms: number }>(
      'SELECT at_ms FROM api_requests WHERE grp = ? AND at_ms > ? ORDER BY at_ms LIMIT 1 OFFSET ?',
    );
    this.#recent = db
      .prepare<[string, number], number>(
        'SELECT at_ms FROM api_requests WHERE grp = ? AND at_ms > ? ORDER BY at_ms',
      )
      .pluck();
    this.#block = db.prepare<[string], { blocked_until_ms: number; source: string }>(
      'SELECT blocked_until_ms, source FROM api_blocks WHERE grp = ?',
    );
    this.#settle = db.prepare('UPDATE api_requests SET status = ?, outcome = ? WHERE id = ?');
    this.#refund = db.prepare('DELETE FROM api_requests WHERE id = ?');
    this.#lastRead = db
      .prepare<[string], number>('SELECT read_at_ms FROM state_reads WHERE charger_id = ?')
      .pluck();
    this.#readOf = db
      .prepare<[string], string>(
        'SELECT charger_id FROM state_reads WHERE charger_id IN (SELECT value FROM json_each(?))',
      )
      .pluck();
    this.#markRead = db.prepare(
      'INSERT INTO state_reads (charger_id, read_at_ms) VALUES (?, ?) ON CONFLICT (charger_id) DO UPDATE SET read_at_ms = excluded.read_at_ms',
    );
  }

  describe(windows: readonly LedgerWindow[]): void {
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM api_windows').run();
      const ins = this.#db.prepare(
        'INSERT OR REPLACE INTO api_windows (grp, window_seconds, kind, "limit") VALUES (?, ?, ?, ?)',
      );
      for (const w of windows) ins.run(w.group, w.seconds, w.kind, w.limit);
    })();
  }

  exclusive<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  busy(err: unknown): boolean {
    return isBusy(err);
  }

  record(group: string, at: number, method: string, path: string): number {
    return Number(this.#insert.run(group, at, method, path).lastInsertRowid);
  }

  used(group: string, since: number): number {
    return this.#count.get(group, since)!.n;
  }

  nthAfter(group: string, since: number, offset: number): number | undefined {
    return this.#nth.get(group, since, offset)?.at_ms;
  }

  timesAfter(group: string, since: number): number[] {
    return this.#recent.all(group, since);
  }

  pause(group: string): LedgerPause | undefined {
    const row = this.#block.get(group);
    return row && { until: row.blocked_until_ms, source: row.source };
  }

  extendPause(group: string, until: number, source: string, detail: string): void {
    this.#db
      .prepare(
        `INSERT INTO api_blocks (grp, blocked_until_ms, source, detail) VALUES (?, ?, ?, ?)
         ON CONFLICT (grp) DO UPDATE SET blocked_until_ms = excluded.blocked_until_ms, source = excluded.source,
           detail = excluded.detail WHERE excluded.blocked_until_ms > api_blocks.blocked_until_ms`,
      )
      .run(group, until, source, detail);
  }

  settle(ids: readonly number[], status: number | null, outcome: string): void {
    this.#db.transaction(() => {
      for (const id of ids) this.#settle.run(status, outcome, id);
    })();
  }

  forget(ids: readonly number[]): void {
    this.#db.transaction(() => {
      for (const id of ids) this.#refund.run(id);
    })();
  }

  previousStatus(group: string, beforeId: number): number | null | undefined {
    return this.#db
      .prepare<[string, number], { status: number | null }>(
        'SELECT status FROM api_requests WHERE grp = ? AND id < ? AND status IS NOT NULL ORDER BY id DESC LIMIT 1',
      )
      .get(group, beforeId)?.status;
  }

  newestOutcomes(group: string, max: number): { status: number | null; outcome: string }[] {
    return this.#db
      .prepare<[string, number], { status: number | null; outcome: string }>(
        'SELECT status, outcome FROM api_requests WHERE grp = ? AND outcome IS NOT NULL ORDER BY id DESC LIMIT ?',
      )
      .all(group, max);
  }

  prune(requestsBefore: number, pausesBefore: number): void {
    this.#db.prepare('DELETE FROM api_requests WHERE at_ms < ?').run(requestsBefore);
    this.#db.prepare('DELETE FROM api_blocks WHERE blocked_until_ms < ?').run(pausesBefore);
  }

  lastStateRead(chargerId: string): number | undefined {
    return this.#lastRead.get(chargerId);
  }

  chargersRead(chargerIds: readonly string[]): Set<string> {
    return new Set(this.#readOf.all(JSON.stringify(chargerIds)));
  }

  markStateRead(chargerId: string, at: number): void {
    this.#markRead.run(chargerId, at);
  }
}
