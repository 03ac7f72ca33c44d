/**
 * The one way charger state is written. A batch is applied in one transaction: latest-wins by
 * `observed_at` (an older or equal observation never replaces the stored one), one history row per
 * distinct (charger, state, observed_at), and `state_name` from the charger's device-type schema, else
 * the global name.
 */
import type { Observation } from '../observation.js';
import { STATE } from '../observation.js';
import { isoMs } from '../time.js';
import type { Db } from './database.js';
import type { SessionStore } from './sessions.js';

export interface AppliedChange {
  chargerId: string;
  stateId: number;
  value: string | null;
  previous: string | null | undefined;
}

export interface ApplyResult {
  /** Observations that became the current value of their state. */
  applied: number;
  /** New history rows. */
  history: number;
  /** Operation-mode (710) values that changed, for the follow-up state read. */
  modeChanges: AppliedChange[];
  /** Charger ids the inventory does not know. */
  unknownChargers: string[];
  /**
   * Chargers whose -2 IsOnline went from 0 to 1: back from a restart, a firmware update or an outage, with
   * values that may have changed without a push.
   */
  cameOnline: string[];
  /**
   * With `compareValues`: observations that brought a value other than the stored one (or a state not stored
   * before). A state read whose observations all repeat stored values (newer timestamps at most) revealed
   * nothing the live events had not said.
   */
  newValues: number;
}

export interface ObservationStoreOptions {
  /** 0 keeps no history; older observations are not recorded (they would be pruned at once). */
  historyDays: number;
  now: () => number;
  /** Completed sessions (723) become rows in the observation's own transaction (CONTRACT §8). */
  sessions?: SessionStore | undefined;
}

/**
 * History is deleted in chunks of about this many rows, one transaction each: a week of a big fleet's history
 * in one DELETE would hold the event loop (and the write lock) for seconds.
 */
export const PRUNE_CHUNK_ROWS = 5_000;

export class ObservationStore {
  readonly #db: Db;
  readonly #options: ObservationStoreOptions;
  readonly #upsert;
  readonly #history;
  readonly #currentValue;
  readonly #chargerType;
  readonly #names;
  /** Device type per charger id; `false` for ids the inventory does not hold. */
  #deviceTypes = new Map<string, number | null | false>();
  #nameCache = new Map<string, string | null>();

  constructor(db: Db, options: ObservationStoreOptions) {
    this.#db = db;
    this.#options = options;
    this.#upsert = db.prepare(`
      INSERT INTO charger_state (charger_id, state_id, state_name, value, observed_at, received_at, source)
      VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (charger_id, state_id) DO UPDATE SET
        state_name = excluded.state_name, value = excluded.value, observed_at = excluded.observed_at,
        received_at = excluded.received_at, source = excluded.source
      WHERE excluded.observed_at > charger_state.observed_at`);
    this.#history = db.prepare(`
      INSERT OR IGNORE INTO charger_state_history (charger_id, state_id, value, observed_at, received_at, source)
      VALUES (?, ?, ?, ?, ?, ?)`);
    this.#currentValue = db.prepare<[string, number], { value: string | null; observed_at: string }>(
      'SELECT value, observed_at FROM charger_state WHERE charger_id = ? AND state_id = ?',
    );
    this.#chargerType = db.prepare<[string], { device_type: number | null }>(
      'SELECT device_type FROM chargers WHERE id = ?',
    );
    this.#names = db.prepare<[number, number], { name: string }>(
      'SELECT name FROM state_names WHERE device_type IN (?, -1) AND state_id = ? ORDER BY device_type = -1 LIMIT 1',
    );
  }

  /** Forget cached device types and names after the inventory or the constants changed. */
  invalidate(): void {
    this.#deviceTypes.clear();
    this.#nameCache.clear();
  }

  /**
   * Chargers an inventory pass in flight has seen, before it commits: their observations are named by
   * their device type and not reported unknown. `invalidate()` (after the pass) returns to the table.
   */
  expect(chargers: readonly { id: string; deviceType: number | null }[]): void {
    for (const c of chargers) {
      const known = this.#deviceTypes.get(c.id);
      if (known === undefined || known === false) this.#deviceTypes.set(c.id, c.deviceType);
    }
  }

  /** The device type known for a charger; undefined when the charger is not in the inventory. */
  #deviceType(chargerId: string): number | null | undefined {
    let type = this.#deviceTypes.get(chargerId);
    if (type === undefined) {
      const row = this.#chargerType.get(chargerId);
      type = row ? row.device_type : false;
      this.#deviceTypes.set(chargerId, type);
    }
    return type === false ? undefined : type;
  }

  #stateName(deviceType: number | null | undefined, stateId: number): string | null {
    const key = `${deviceType ?? -1}:${stateId}`;
    let name = this.#nameCache.get(key);
    if (name === undefined) {
      name = this.#names.get(deviceType ?? -1, stateId)?.name ?? null;
      this.#nameCache.set(key, name);
    }
    return name;
  }

  /**
   * Applies a batch in one transaction. With `compareValues`, counts in `newValues` the observations of states
   * it accepts that brought a value other than the stored one.
   */
  apply(
    batch: readonly Observation[],
    options: { compareValues?: (stateId: number) => boolean } = {},
  ): ApplyResult {
    const result: ApplyResult = {
      applied: 0,
      history: 0,
      modeChanges: [],
      unknownChargers: [],
      newValues: 0,
      cameOnline: [],
    };
    if (batch.length === 0) return result;
    const receivedAt = isoMs(this.#options.now());
    const historyFrom =
      this.#options.historyDays > 0 ? this.#options.now() - this.#options.historyDays * 86_400_000 : Infinity;
    const unknown = new Set<string>();
    this.#db.transaction(() => {
      for (const o of batch) {
        const known = this.#deviceType(o.chargerId);
        if (known === undefined) unknown.add(o.chargerId);
        const deviceType = known ?? o.deviceType;
        const observedAt = isoMs(o.observedAt);
        const previous =
          o.stateId === STATE.operationMode || o.stateId === STATE.isOnline || options.compareValues
            ? this.#currentValue.get(o.chargerId, o.stateId)
            : undefined;
        const name = this.#stateName(deviceType, o.stateId);
        const changed = this.#upsert.run(
          o.chargerId,
          o.stateId,
          name,
          o.value,
          observedAt,
          receivedAt,
          o.source,
        );
        const sessions = this.#options.sessions;
        if (sessions) {
          if (o.stateId === STATE.completedSession) sessions.completed(o.chargerId, o.value, o.source);
          else if (o.stateId === STATE.midPublicKey && changed.changes > 0)
            sessions.keyArrived(o.chargerId, o.value);
        }
        if (changed.changes > 0) {
          result.applied++;
          if (options.compareValues?.(o.stateId) && previous?.value !== o.value) result.newValues++;
          if (o.stateId === STATE.isOnline && o.value === '1' && previous?.value === '0')
            result.cameOnline.push(o.chargerId);
          if (o.stateId === STATE.operationMode && previous?.value !== o.value) {
            result.modeChanges.push({
              chargerId: o.chargerId,
              stateId: o.stateId,
              value: o.value,
              previous: previous?.value,
            });
          }
        }
        if (o.observedAt >= historyFrom) {
          result.history += this.#history.run(
            o.chargerId,
            o.stateId,
            o.value,
            observedAt,
            receivedAt,
            o.source,
          ).changes;
        }
      }
    })();
    result.unknownChargers = [...unknown];
    return result;
  }

  /** A charger's stored value of one state and when Zaptec observed it; undefined when none is stored. */
  current(chargerId: string, stateId: number): { value: string | null; observed_at: string } | undefined {
    return this.#currentValue.get(chargerId, stateId);
  }

  /** Deletes history older than the retention; returns the rows removed. */
  pruneHistory(max = PRUNE_CHUNK_ROWS): number {
    const days = this.#options.historyDays;
    const before = days > 0 ? isoMs(this.#options.now() - days * 86_400_000) : '9999';
    // The key starts with observed_at: the chunk's end is found, and deleted up to, through the key alone.
    const chunkEnd = this.#db
      .prepare<[string, number], { observed_at: string }>(
        'SELECT observed_at FROM charger_state_history WHERE observed_at < ? ORDER BY observed_at LIMIT 1 OFFSET ?',
      )
      .get(before, max)?.observed_at;
    const del = this.#db.prepare('DELETE FROM charger_state_history WHERE observed_at < ?');
    const n = del.run(chunkEnd ?? before).changes;
    // A chunk of one instant only (thousands of rows with one timestamp): that instant goes whole.
    if (n === 0 && chunkEnd !== undefined)
      return this.#db.prepare('DELETE FROM charger_state_history WHERE observed_at = ?').run(chunkEnd)
        .changes;
    return n;
  }
}
