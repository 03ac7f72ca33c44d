/**
 * Installations, circuits and chargers. Rows are never deleted: what the API no longer shows gets
 * `active = 0` and `removed_at`; what comes back gets `active = 1` again.
 */
import { isoMs } from '../time.js';
import type { Db } from './database.js';

export interface InstallationRecord {
  id: string;
  name: string | null;
  data: unknown;
}

export interface CircuitRecord {
  id: string;
  installationId: string;
  name: string | null;
  maxCurrent: number | null;
  data: unknown;
}

export interface ChargerRecord {
  id: string;
  installationId: string | null;
  circuitId: string | null;
  deviceId: string | null;
  name: string | null;
  deviceType: number | null;
  data: unknown;
}

export interface InventorySnapshot {
  installations: InstallationRecord[];
  circuits: CircuitRecord[];
  chargers: ChargerRecord[];
  /** Installations whose hierarchy could not be read: their circuits are kept as they are. */
  hierarchyMissing: ReadonlySet<string>;
}

export interface ChargerRow {
  id: string;
  installation_id: string | null;
  circuit_id: string | null;
  device_id: string | null;
  name: string | null;
  device_type: number | null;
  active: number;
}

export interface InventoryChange {
  installationsAdded: number;
  installationsRemoved: number;
  chargersAdded: number;
  chargersRemoved: number;
}

/**
 * When a charger (`c`, a row of `chargers`) was last heard from: the newest `received_at` of its state. The one
 * definition of a charger's state age, for the start pass, `status`, `/metrics` and the demo.
 */
export const LAST_HEARD_SQL = '(SELECT max(received_at) FROM charger_state s WHERE s.charger_id = c.id)';

/** An active charger and when its state was last received (ISO 8601; null: never). */
export interface ChargerAge {
  id: string;
  installation_id: string | null;
  received_at: string | null;
}

export class InventoryStore {
  readonly #db: Db;
  readonly #upsertInstallation;
  readonly #upsertCircuit;
  readonly #upsertCharger;

  constructor(db: Db) {
    this.#db = db;
    this.#upsertInstallation = db.prepare(`
      INSERT INTO installations (id, name, active, data, first_seen_at, last_seen_at, removed_at)
      VALUES (@id, @name, 1, @data, @now, @now, NULL)
      ON CONFLICT (id) DO UPDATE SET name = @name, active = 1, data = @data, last_seen_at = @now, removed_at = NULL`);
    this.#upsertCircuit = db.prepare(`
      INSERT INTO circuits (id, installation_id, name, max_current, active, data, first_seen_at, last_seen_at, removed_at)
      VALUES (@id, @installationId, @name, @maxCurrent, 1, @data, @now, @now, NULL)
      ON CONFLICT (id) DO UPDATE SET installation_id = @installationId, name = @name, max_current = @maxCurrent,
        active = 1, data = @data, last_seen_at = @now, removed_at = NULL`);
    this.#upsertCharger = db.prepare(`
      INSERT INTO chargers (id, installation_id, circuit_id, device_id, name, device_type, active, data,
                            first_seen_at, last_seen_at, removed_at)
      VALUES (@id, @installationId, @circuitId, @deviceId, @name, @deviceType, 1, @data, @now, @now, NULL)
      ON CONFLICT (id) DO UPDATE SET installation_id = coalesce(@installationId, installation_id),
        circuit_id = coalesce(@circuitId, circuit_id), device_id = coalesce(@deviceId, device_id),
        name = coalesce(@name, name), device_type = coalesce(@deviceType, device_type), active = 1,
        data = @data, last_seen_at = @now, removed_at = NULL`);
  }

  /** Stores a complete inventory pass in one transaction and retires what it no longer holds. */
  replace(snapshot: InventorySnapshot, now: number): InventoryChange {
    const at = isoMs(now);
    return this.#db.transaction(() => {
      const before = this.#counts();
      for (const i of snapshot.installations) {
        this.#upsertInstallation.run({ id: i.id, name: i.name, data: JSON.stringify(i.data), now: at });
      }
      for (const c of snapshot.circuits) this.#circuit(c, at);
      for (const c of snapshot.chargers) this.#charger(c, at);
      this.#retire(
        'installations',
        snapshot.installations.map((i) => i.id),
        at,
      );
      this.#retireCircuits(snapshot, at);
      this.#retire(
        'chargers',
        snapshot.chargers.map((c) => c.id),
        at,
      );
      const after = this.#counts();
      return {
        installationsAdded: after.newInstallations - before.newInstallations,
        installationsRemoved: after.removedInstallations - before.removedInstallations,
        chargersAdded: after.newChargers - before.newChargers,
        chargersRemoved: after.removedChargers - before.removedChargers,
      };
    })();
  }

  /** One charger found by a single lookup; its circuits, when the hierarchy was read too. */
  upsertCharger(charger: ChargerRecord, now: number, circuits: CircuitRecord[] = []): void {
    const at = isoMs(now);
    this.#db.transaction(() => {
      for (const c of circuits) this.#circuit(c, at);
      this.#charger(charger, at);
    })();
  }

  #circuit(c: CircuitRecord, at: string): void {
    this.#upsertCircuit.run({
      id: c.id,
      installationId: c.installationId,
      name: c.name,
      maxCurrent: c.maxCurrent,
      data: JSON.stringify(c.data),
      now: at,
    });
  }

  #charger(c: ChargerRecord, at: string): void {
    this.#upsertCharger.run({
      id: c.id,
      installationId: c.installationId,
      circuitId: c.circuitId,
      deviceId: c.deviceId,
      name: c.name,
      deviceType: c.deviceType,
      data: JSON.stringify(c.data),
      now: at,
    });
  }

  #retire(table: 'installations' | 'chargers', keep: string[], at: string): void {
    const keepSet = new Set(keep);
    const active = this.#db.prepare<[], { id: string }>(`SELECT id FROM ${table} WHERE active = 1`).all();
    const retire = this.#db.prepare(`UPDATE ${table} SET active = 0, removed_at = ? WHERE id = ?`);
    for (const row of active) if (!keepSet.has(row.id)) retire.run(at, row.id);
  }

  #retireCircuits(snapshot: InventorySnapshot, at: string): void {
    const keep = new Set(snapshot.circuits.map((c) => c.id));
    const active = this.#db
      .prepare<[], { id: string; installation_id: string }>(
        'SELECT id, installation_id FROM circuits WHERE active = 1',
      )
      .all();
    const retire = this.#db.prepare('UPDATE circuits SET active = 0, removed_at = ? WHERE id = ?');
    for (const row of active) {
      if (!keep.has(row.id) && !snapshot.hierarchyMissing.has(row.installation_id)) retire.run(at, row.id);
    }
  }

  #counts(): {
    newInstallations: number;
    removedInstallations: number;
    newChargers: number;
    removedChargers: number;
  } {
    return this.#db
      .prepare<
        [],
        {
          newInstallations: number;
          removedInstallations: number;
          newChargers: number;
          removedChargers: number;
        }
      >(
        `SELECT (SELECT count(*) FROM installations) AS newInstallations,
                (SELECT count(*) FROM installations WHERE active = 0) AS removedInstallations,
                (SELECT count(*) FROM chargers) AS newChargers,
                (SELECT count(*) FROM chargers WHERE active = 0) AS removedChargers`,
      )
      .get()!;
  }

  /** A charger by id or by serial (`DeviceId`, case-insensitive). */
  findCharger(idOrSerial: string): ChargerRow | undefined {
    return this.#db
      .prepare<[string, string], ChargerRow>(
        `SELECT id, installation_id, circuit_id, device_id, name, device_type, active FROM chargers
         WHERE id = ? COLLATE NOCASE OR device_id = ? COLLATE NOCASE ORDER BY active DESC LIMIT 1`,
      )
      .get(idOrSerial, idOrSerial);
  }

  activeChargers(): ChargerRow[] {
    return this.#db
      .prepare<[], ChargerRow>(
        'SELECT id, installation_id, circuit_id, device_id, name, device_type, active FROM chargers WHERE active = 1 ORDER BY id',
      )
      .all();
  }

  activeInstallationIds(): string[] {
    return this.#db
      .prepare<[], { id: string }>('SELECT id FROM installations WHERE active = 1 ORDER BY id')
      .all()
      .map((r) => r.id);
  }

  installationData(id: string): unknown {
    const row = this.#db
      .prepare<[string], { data: string }>('SELECT data FROM installations WHERE id = ?')
      .get(id);
    return row ? JSON.parse(row.data) : undefined;
  }

  /**
   * Settings of one installation that Zaptec has since accepted (an available current the daemon set), merged
   * into its stored model so that the next command is judged against them, not the last inventory pass.
   */
  mergeInstallationData(id: string, fields: Record<string, number>): void {
    this.#db
      .prepare('UPDATE installations SET data = json_patch(data, ?) WHERE id = ?')
      .run(JSON.stringify(fields), id);
  }

  /** When the stalest active charger was last heard from (ISO 8601); null when none ever was. */
  oldestHeard(): string | null {
    return this.#db
      .prepare<[], string | null>(
        `SELECT min(last) FROM (SELECT ${LAST_HEARD_SQL} AS last FROM chargers c WHERE c.active = 1)`,
      )
      .pluck()
      .get()!;
  }

  /**
   * Each active charger with the time its state was last received (null: never), in id order: all of them,
   * or a page of at most `limit` after the id `after`.
   */
  stateAges(after?: string, limit = -1): ChargerAge[] {
    return this.#db
      .prepare<[string, number], ChargerAge>(
        `SELECT c.id, c.installation_id, ${LAST_HEARD_SQL} AS received_at
         FROM chargers c WHERE c.active = 1 AND c.id > ? ORDER BY c.id LIMIT ?`,
      )
      .all(after ?? '', limit);
  }

  /** Replaces what state values mean (from /api/constants), unless it has none to give. */
  replaceStateValues(rows: { stateId: number; value: string; meaning: string }[]): void {
    if (rows.length === 0) return;
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM state_values').run();
      const ins = this.#db.prepare(
        'INSERT OR REPLACE INTO state_values (state_id, value, meaning) VALUES (?, ?, ?)',
      );
      for (const r of rows) ins.run(r.stateId, r.value, r.meaning);
    })();
  }

  /** Replaces the state names from /api/constants (global under device type -1). */
  replaceStateNames(rows: { deviceType: number; stateId: number; name: string }[]): void {
    if (rows.length === 0) return;
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM state_names').run();
      const ins = this.#db.prepare(
        'INSERT OR REPLACE INTO state_names (device_type, state_id, name) VALUES (?, ?, ?)',
      );
      for (const r of rows) ins.run(r.deviceType, r.stateId, r.name);
      this.#db
        .prepare(
          `UPDATE charger_state SET state_name = (
             SELECT n.name FROM state_names n
             WHERE n.state_id = charger_state.state_id
               AND n.device_type IN (coalesce((SELECT device_type FROM chargers c WHERE c.id = charger_state.charger_id), -1), -1)
             ORDER BY n.device_type = -1 LIMIT 1)`,
        )
        .run();
    })();
  }
}
