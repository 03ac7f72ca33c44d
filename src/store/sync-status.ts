/** `sync_status`: each followed installation's live-event state and polling, told truthfully. */
import { isoMs } from '../time.js';
import type { Db } from './database.js';
import { DeferredWrites } from './deferred-writes.js';

export type EventsState = 'connected' | 'connecting' | 'off' | 'failed';

export interface SyncStatusRow {
  installation_id: string;
  events: EventsState;
  last_event_at: string | null;
  last_poll_at: string | null;
  detail: string | null;
}

/**
 * Its writes never throw: a write that meets a held lock or a full disk is kept (the newest per installation
 * and kind) and written by `retry()`, which the heartbeat calls; `status` shows the truth a moment late
 * rather than the daemon failing over a status line.
 */
export class SyncStatusStore {
  readonly #db: Db;
  readonly #writes = new DeferredWrites();
  readonly #events;
  readonly #lastEvent;
  readonly #lastPoll;
  readonly #ensure;
  readonly #detail;

  constructor(db: Db) {
    this.#db = db;
    this.#events = db.prepare(
      `INSERT INTO sync_status (installation_id, events, detail) VALUES (?, ?, ?)
       ON CONFLICT (installation_id) DO UPDATE SET events = excluded.events, detail = excluded.detail`,
    );
    this.#lastEvent = db.prepare(
      `INSERT INTO sync_status (installation_id, events, last_event_at) VALUES (?, 'connected', ?)
       ON CONFLICT (installation_id) DO UPDATE SET last_event_at = max(coalesce(last_event_at, ''), excluded.last_event_at)`,
    );
    this.#lastPoll = db.prepare(
      `INSERT INTO sync_status (installation_id, events, last_poll_at) VALUES (?, 'connecting', ?)
       ON CONFLICT (installation_id) DO UPDATE SET last_poll_at = excluded.last_poll_at`,
    );
    this.#ensure = db.prepare(
      'INSERT INTO sync_status (installation_id, events, detail) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    );
    this.#detail = db.prepare('UPDATE sync_status SET detail = ? WHERE installation_id = ?');
  }

  /**
   * Rows for many installations in one transaction (a start following 300 wrote 300 commits, 25 ms): `off`
   * set on each, or `connecting` where an installation has no row yet.
   */
  ensureAll(installationIds: readonly string[], events: 'off' | 'connecting'): void {
    this.#writes.write(`all:${events}`, () =>
      this.#db.transaction(() => {
        for (const id of installationIds)
          if (events === 'off') this.#events.run(id, 'off', null);
          else this.#ensure.run(id, 'connecting', null);
      })(),
    );
  }

  setEvents(installationId: string, events: EventsState, detail: string | null): void {
    this.#writes.write(`events:${installationId}`, () => this.#events.run(installationId, events, detail));
  }

  eventReceived(installationId: string, now: number): void {
    this.#writes.write(`event:${installationId}`, () => this.#lastEvent.run(installationId, isoMs(now)));
  }

  polled(installationId: string, now: number): void {
    this.#writes.write(`poll:${installationId}`, () => this.#lastPoll.run(installationId, isoMs(now)));
  }

  setDetail(installationId: string, detail: string | null): void {
    this.#writes.write(`detail:${installationId}`, () => this.#detail.run(detail, installationId));
  }

  /** Writes what a held lock or a full disk kept back. */
  retry(): void {
    this.#writes.retry();
  }

  /** Rows of installations that are no longer followed are removed, so `status` shows only what runs. */
  retain(installationIds: readonly string[]): void {
    const keep = new Set(installationIds);
    this.#writes.write('retain', () => {
      const all = this.#db
        .prepare<[], { installation_id: string }>('SELECT installation_id FROM sync_status')
        .all();
      const del = this.#db.prepare('DELETE FROM sync_status WHERE installation_id = ?');
      for (const r of all) if (!keep.has(r.installation_id)) del.run(r.installation_id);
    });
  }

  all(): SyncStatusRow[] {
    return this.#db.prepare<[], SyncStatusRow>('SELECT * FROM sync_status ORDER BY installation_id').all();
  }
}
