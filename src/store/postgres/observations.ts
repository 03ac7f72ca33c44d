/**
 * The one way charger state is written, in PostgreSQL (CONTRACT §9): the rules of the SQLite store
 * (observations.ts) — latest wins by `observed_at`, one history row per distinct (charger, state,
 * observed_at), `state_name` from the charger's device type else the global name — and after each commit that
 * changed state, `NOTIFY <schema>_state` with the changed chargers' ids (`"*"` when they would not fit).
 *
 * A batch is one transaction of a few statements whatever its size: the stored values of the batch's states
 * are read once, the batch is decided here in order (so a value that changes twice in a batch reports both
 * changes, as SQLite's row-by-row apply does), and the winners and the history rows are written with one
 * statement each from arrays. Only the active daemon writes its schema, so nothing changes between the read
 * and the write.
 */
import type { Observation } from '../../observation.js';
import { STATE } from '../../observation.js';
import { isoMs } from '../../time.js';
import type { ApplyResult, ObservationStoreOptions } from '../observations.js';
import { inTransaction, type PgPool } from './pool.js';

/** NOTIFY's payload must stay under 8,000 bytes (CONTRACT §9). */
const NOTIFY_MAX_BYTES = 7_900;

interface Stored {
  value: string | null;
  /** ISO-8601, as stored: compared as strings, like SQLite's TEXT (same format, same order). */
  observedAt: string;
}

export class PgObservationStore {
  readonly #pool: PgPool;
  readonly #schema: string;
  readonly #options: Omit<ObservationStoreOptions, 'sessions'>;
  /** Device type per charger id; `false` for ids the inventory does not hold. */
  readonly #deviceTypes = new Map<string, number | null | false>();
  /** `deviceType:stateId` → name; loaded whole (a few hundred rows) when first needed. */
  #names: Map<string, string> | undefined;

  constructor(pool: PgPool, schema: string, options: Omit<ObservationStoreOptions, 'sessions'>) {
    this.#pool = pool;
    this.#schema = schema;
    this.#options = options;
  }

  /** Forget cached device types and names after the inventory or the constants changed. */
  invalidate(): void {
    this.#deviceTypes.clear();
    this.#names = undefined;
  }

  /** Chargers an inventory pass in flight has seen: named by their device type, not reported unknown. */
  expect(chargers: readonly { id: string; deviceType: number | null }[]): void {
    for (const c of chargers) {
      const known = this.#deviceTypes.get(c.id);
      if (known === undefined || known === false) this.#deviceTypes.set(c.id, c.deviceType);
    }
  }

  async apply(
    batch: readonly Observation[],
    options: { compareValues?: (stateId: number) => boolean } = {},
  ): Promise<ApplyResult> {
    const result: ApplyResult = {
      applied: 0,
      history: 0,
      modeChanges: [],
      unknownChargers: [],
      newValues: 0,
      cameOnline: [],
    };
    if (batch.length === 0) return result;
    const now = this.#options.now();
    const receivedAt = isoMs(now);
    const historyFrom =
      this.#options.historyDays > 0 ? now - this.#options.historyDays * 86_400_000 : Infinity;
    return inTransaction(this.#pool, async (client) => {
      await this.#loadDeviceTypes(client, batch);
      const names = await this.#loadNames(client);
      const stored = await this.#stored(client, batch);
      const unknown = new Set<string>();
      /** The winner per state, written at the end; history rows in batch order. */
      const winners = new Map<string, { o: Observation; name: string | null; observedAt: string }>();
      const history: { o: Observation; observedAt: string }[] = [];
      for (const o of batch) {
        const known = this.#deviceTypes.get(o.chargerId);
        if (known === false || known === undefined) unknown.add(o.chargerId);
        const deviceType = known === false || known === undefined ? (o.deviceType ?? null) : known;
        const observedAt = isoMs(o.observedAt);
        const key = `${o.chargerId}:${o.stateId}`;
        const previous = stored.get(key);
        if (!previous || observedAt > previous.observedAt) {
          result.applied++;
          if (options.compareValues?.(o.stateId) && previous?.value !== o.value) result.newValues++;
          if (o.stateId === STATE.isOnline && o.value === '1' && previous?.value === '0')
            result.cameOnline.push(o.chargerId);
          if (o.stateId === STATE.operationMode && previous?.value !== o.value)
            result.modeChanges.push({
              chargerId: o.chargerId,
              stateId: o.stateId,
              value: o.value,
              previous: previous?.value,
            });
          stored.set(key, { value: o.value, observedAt });
          const name = names.get(`${deviceType ?? -1}:${o.stateId}`) ?? names.get(`-1:${o.stateId}`) ?? null;
          winners.set(key, { o, name, observedAt });
        }
        if (o.observedAt >= historyFrom) history.push({ o, observedAt });
      }
      const s = this.#schema;
      if (winners.size > 0) {
        const w = [...winners.values()];
        await client.query(
          `INSERT INTO ${s}.charger_state (charger_id, state_id, state_name, value, observed_at, received_at, source)
           SELECT c, st, n, v, o, $6::timestamptz, src
           FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $7::text[])
             AS t(c, st, n, v, o, src)
           ON CONFLICT (charger_id, state_id) DO UPDATE SET
             state_name = excluded.state_name, value = excluded.value, observed_at = excluded.observed_at,
             received_at = excluded.received_at, source = excluded.source
           WHERE excluded.observed_at > charger_state.observed_at`,
          [
            w.map((x) => x.o.chargerId),
            w.map((x) => x.o.stateId),
            w.map((x) => x.name),
            w.map((x) => x.o.value),
            w.map((x) => x.observedAt),
            receivedAt,
            w.map((x) => x.o.source),
          ],
        );
      }
      if (history.length > 0) {
        const r = await client.query(
          `INSERT INTO ${s}.charger_state_history (charger_id, state_id, value, observed_at, received_at, source)
           SELECT c, st, v, o, $5::timestamptz, src
           FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[], $6::text[]) AS t(c, st, v, o, src)
           ON CONFLICT DO NOTHING`,
          [
            history.map((x) => x.o.chargerId),
            history.map((x) => x.o.stateId),
            history.map((x) => x.o.value),
            history.map((x) => x.observedAt),
            receivedAt,
            history.map((x) => x.o.source),
          ],
        );
        result.history = r.rowCount ?? 0;
      }
      if (winners.size > 0) {
        await client.query('SELECT pg_notify($1, $2)', [
          `${s}_state`,
          notifyPayload([...new Set([...winners.values()].map((x) => x.o.chargerId))]),
        ]);
      }
      result.unknownChargers = [...unknown];
      return result;
    });
  }

  /** The stored value and time of every state the batch touches. */
  async #stored(
    client: import('pg').PoolClient,
    batch: readonly Observation[],
  ): Promise<Map<string, Stored>> {
    const keys = new Map<string, Observation>();
    for (const o of batch) keys.set(`${o.chargerId}:${o.stateId}`, o);
    const list = [...keys.values()];
    const r = await client.query<{
      charger_id: string;
      state_id: number;
      value: string | null;
      observed_at: string;
    }>(
      `SELECT s.charger_id, s.state_id, s.value, s.observed_at FROM ${this.#schema}.charger_state s
       JOIN unnest($1::text[], $2::int[]) AS k(c, st) ON s.charger_id = k.c AND s.state_id = k.st`,
      [list.map((o) => o.chargerId), list.map((o) => o.stateId)],
    );
    return new Map(
      r.rows.map((x) => [`${x.charger_id}:${x.state_id}`, { value: x.value, observedAt: x.observed_at }]),
    );
  }

  /** Device types of the batch's chargers not cached yet, in one query. */
  async #loadDeviceTypes(client: import('pg').PoolClient, batch: readonly Observation[]): Promise<void> {
    const missing = [...new Set(batch.map((o) => o.chargerId))].filter((id) => !this.#deviceTypes.has(id));
    if (missing.length === 0) return;
    const r = await client.query<{ id: string; device_type: number | null }>(
      `SELECT id, device_type FROM ${this.#schema}.chargers WHERE id = ANY($1::text[])`,
      [missing],
    );
    for (const id of missing) this.#deviceTypes.set(id, false);
    for (const row of r.rows) this.#deviceTypes.set(row.id, row.device_type);
  }

  async #loadNames(client: import('pg').PoolClient): Promise<Map<string, string>> {
    if (this.#names) return this.#names;
    const r = await client.query<{ device_type: number; state_id: number; name: string }>(
      `SELECT device_type, state_id, name FROM ${this.#schema}.state_names`,
    );
    this.#names = new Map(r.rows.map((x) => [`${x.device_type}:${x.state_id}`, x.name]));
    return this.#names;
  }
}

/** The changed chargers as a JSON array, or `"*"` when that would not fit in a notification. */
export function notifyPayload(ids: readonly string[]): string {
  const payload = JSON.stringify(ids);
  return Buffer.byteLength(payload) <= NOTIFY_MAX_BYTES ? payload : '"*"';
}
