/**
 * User groups (CONTRACT §5): each configured group's subscription state, and which group carries which
 * installation's live events, learned from the traffic and remembered across restarts. Memory is the truth
 * while the daemon runs; a write that meets a held lock (or a full disk) is kept and written by `retry()`,
 * which the heartbeat calls, so the message path never fails over bookkeeping.
 */
import type { Db } from './database.js';
import { DeferredWrites } from './deferred-writes.js';
import type { EventsState } from './sync-status.js';

export class UserGroupStore {
  readonly #db: Db;
  readonly #writes = new DeferredWrites();
  readonly #carry;
  readonly #release;
  readonly #events;

  constructor(db: Db) {
    this.#db = db;
    this.#carry = db.prepare(
      `INSERT INTO user_group_installations (installation_id, group_id, since) VALUES (?, ?, ?)
       ON CONFLICT (installation_id) DO UPDATE SET group_id = excluded.group_id, since = excluded.since`,
    );
    this.#release = db.prepare('DELETE FROM user_group_installations WHERE group_id = ?');
    this.#events = db.prepare(
      `INSERT INTO user_groups (id, events, detail) VALUES (?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET events = excluded.events, detail = excluded.detail`,
    );
  }

  /** Installation → the group that carries it, for the configured groups; forgets the others. */
  load(groups: readonly string[]): Map<string, string> {
    const configured = new Set(groups);
    const rows = this.#db
      .prepare<[], { installation_id: string; group_id: string }>(
        'SELECT installation_id, group_id FROM user_group_installations',
      )
      .all();
    const carried = new Map<string, string>();
    for (const r of rows) if (configured.has(r.group_id)) carried.set(r.installation_id, r.group_id);
    this.#writes.write('retain', () => {
      const keep = JSON.stringify([...configured]);
      this.#db
        .prepare(
          'DELETE FROM user_group_installations WHERE group_id NOT IN (SELECT value FROM json_each(?))',
        )
        .run(keep);
      this.#db.prepare('DELETE FROM user_groups WHERE id NOT IN (SELECT value FROM json_each(?))').run(keep);
    });
    return carried;
  }

  carry(installationId: string, groupId: string, now: number): void {
    this.#writes.write(`carry:${installationId}`, () =>
      this.#carry.run(installationId, groupId, new Date(now).toISOString()),
    );
  }

  /** The group no longer carries anything (403/404): its installations get their own subscriptions back. */
  release(groupId: string): void {
    this.#writes.write(`release:${groupId}`, () => this.#release.run(groupId));
  }

  setEvents(groupId: string, events: Exclude<EventsState, 'off'>, detail: string | null): void {
    this.#writes.write(`events:${groupId}`, () => this.#events.run(groupId, events, detail));
  }

  /** Writes what a held lock or a full disk kept back. */
  retry(): void {
    this.#writes.retry();
  }
}
