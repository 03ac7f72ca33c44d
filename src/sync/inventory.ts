/**
 * The inventory: installations, chargers and hierarchy, refreshed at start only when the stored one is
 * older than 60 minutes, then on ZAPTEC_INVENTORY_CRON, and never two passes closer than 60 minutes —
 * counted from the database, so restarts cannot shorten it. Constants at most daily.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { DaemonRecord } from '../store/daemon-row.js';
import type {
  ChargerRecord,
  CircuitRecord,
  InventoryChange,
  InventorySnapshot,
  InventoryStore,
} from '../store/inventory.js';
import type { ObservationStore } from '../store/observations.js';
import type { SyncStatusStore } from '../store/sync-status.js';
import { whenWritable } from '../store/writable.js';
import type { Clock } from '../time.js';
import { quietAbortController } from '../time.js';
import type { ZaptecApi } from '../zaptec/api.js';
import {
  type Charger,
  type Constants,
  circuitSchema,
  hierarchyChargerSchema,
  hierarchySchema,
} from '../zaptec/schemas.js';
import { Problems } from './problems.js';

/** Zaptec's guidance: the inventory at most hourly (or for an unknown charger). */
export const INVENTORY_SPACING_MS = 60 * 60_000;
/** The constants change with firmware releases, not by the hour. */
export const CONSTANTS_SPACING_MS = 24 * 60 * 60_000;

export interface InventoryDeps {
  api: ZaptecApi;
  store: InventoryStore;
  observations: ObservationStore;
  daemon: DaemonRecord;
  syncStatus: SyncStatusStore;
  clock: Clock;
  log: Logger;
  cronExpression: string;
  /** ZAPTEC_INSTALLATIONS: only these are followed (all when undefined). */
  followed: string[] | undefined;
  /** A failing pass is reported here (status, /healthz) and cleared by the next one that completes. */
  problems?: Problems;
  /** Called after each completed pass with the followed installations. */
  onRefreshed?: (installationIds: string[], change: InventoryChange) => void;
  /**
   * The chargers of the followed installations' hierarchies, before the charger list's pages (which the
   * lists budget may spread over minutes) and the commit: their state can be read meanwhile.
   */
  onChargersSeen?: (chargers: ChargerRecord[]) => void;
  /**
   * A pass in flight knows every installation it will follow and, from their hierarchies, their chargers; its
   * charger pages may still take long (over an hour at 30,000 chargers, by the lists' 150 per 30 minutes).
   */
  onInstallationsKnown?: (installationIds: string[]) => void;
}

export class InventorySync {
  readonly #d: InventoryDeps;
  readonly #problems: Problems;
  #schedule: Promise<void> | undefined;
  /** Never started: only asked whether a time matches the cron expression. */
  #probe: ScheduledTask | undefined;
  #pass: Promise<boolean> | undefined;
  #stopped = false;
  /** Many waits share it (workers, requests): no listener-leak warning for them. */
  readonly #abort = quietAbortController();

  constructor(deps: InventoryDeps) {
    this.#d = deps;
    this.#problems = deps.problems ?? new Problems(deps.log, deps.clock);
  }

  /** When the last complete pass ended, from the database. */
  lastRefresh(): number | undefined {
    const at = this.#d.daemon.read()?.inventory_refreshed_at;
    return at ? Date.parse(at) : undefined;
  }

  /** The earliest time the 60-minute spacing allows another pass. */
  allowedAt(): number {
    const last = this.lastRefresh();
    return last === undefined ? 0 : last + INVENTORY_SPACING_MS;
  }

  /** The next scheduled pass: the first cron time that the spacing allows. */
  nextScheduled(allowed = this.allowedAt()): number | undefined {
    return this.#nextCron(Math.max(this.#d.clock.now(), allowed));
  }

  /**
   * The expression's first time at or after `from` on the daemon's clock. node-cron knows the expression
   * (`match`); its own next-run search starts from the wall clock, so the search walks the clock's time:
   * minute by minute for a five-field expression (second by second for six), at most 8 days ahead.
   */
  #nextCron(from: number): number | undefined {
    this.#probe ??= cron.createTask(this.#d.cronExpression, () => {});
    const seconds = this.#d.cronExpression.trim().split(/\s+/).length === 6;
    const step = seconds ? 1_000 : 60_000;
    const limit = from + (seconds ? 2 * 3_600_000 : 8 * 86_400_000);
    for (let t = Math.ceil(from / step) * step; t <= limit; t += step)
      if (this.#probe.match(new Date(t))) return t;
    return undefined;
  }

  start(): void {
    this.#schedule = this.#scheduled();
    this.#write(() => this.#d.daemon.inventory(undefined, this.nextScheduled())).catch(() => {});
  }

  /**
   * The scheduled passes, fired by the daemon's clock (in steps of at most a minute, so that a wall clock set
   * forward or back is noticed). A failed pass is reported by #run and retried at the next cron time; a pass
   * still running when the next time comes is that time's pass (no overlap).
   */
  async #scheduled(): Promise<void> {
    const { clock } = this.#d;
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      const next = this.#nextCron(clock.now() + 1);
      if (next === undefined) return;
      while (!signal.aborted && clock.now() < next)
        await clock.sleep(Math.min(60_000, next - clock.now()), signal);
      if (signal.aborted) return;
      await this.refresh('schedule').catch(() => {});
    }
  }

  /** A write that waits (without holding the event loop) while a consumer holds the lock. */
  async #write<T>(write: () => T): Promise<T> {
    return whenWritable((ms, signal) => this.#d.clock.sleep(ms, signal), write, {
      signal: this.#abort.signal,
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    await this.#schedule;
    await this.#probe?.destroy();
    await this.#pass?.catch(() => {});
  }

  /**
   * A pass when the spacing allows; concurrent callers share the one in flight. Returns true when a pass
   * completed (now or the one in flight), false when the spacing did not allow it.
   */
  refresh(reason: string, options: { force?: boolean } = {}): Promise<boolean> {
    if (this.#pass) return this.#pass;
    if (this.#stopped) return Promise.resolve(false);
    if (!options.force && this.#d.clock.now() < this.allowedAt()) return Promise.resolve(false);
    this.#pass = this.#run(reason).finally(() => {
      this.#pass = undefined;
    });
    return this.#pass;
  }

  /** At start: a pass only when the stored inventory is older than the spacing (or absent). */
  async startupPass(): Promise<void> {
    const last = this.lastRefresh();
    if (last !== undefined && this.#d.clock.now() - last < INVENTORY_SPACING_MS) {
      this.#d.log.info(
        { refreshedAt: new Date(last).toISOString() },
        'inventory is recent: no list calls at start',
      );
      return;
    }
    await this.refresh('start');
  }

  async #run(reason: string): Promise<boolean> {
    const { api, clock, log } = this.#d;
    const signal = this.#abort.signal;
    const started = clock.now();
    log.info({ reason }, 'inventory pass started');
    try {
      await this.#constantsIfDue(signal);
      const installations = (await api.installations({ signal })).filter(
        (i) => !this.#d.followed || this.#d.followed.includes(i.Id.toLowerCase()),
      );
      const followedIds = new Set(installations.map((i) => i.Id.toLowerCase()));
      const circuits: CircuitRecord[] = [];
      const fromHierarchy = new Map<string, ChargerRecord>();
      const hierarchyMissing = new Set<string>();
      // Hierarchies first: they cost no list budget, and name the chargers whose state can be read while
      // the charger list's pages wait for the lists window.
      for (const inst of installations) {
        if (this.#stopped) return false;
        const h = await api.hierarchy(inst.Id, { signal });
        const id = inst.Id.toLowerCase();
        if (h === undefined) {
          hierarchyMissing.add(id);
          continue;
        }
        for (const c of parseHierarchy(id, h, circuits)) fromHierarchy.set(c.id, c);
      }
      this.#d.onChargersSeen?.([...fromHierarchy.values()]);
      // Each of these has tens of ms of work at 30,000 chargers: a turn of the event loop each.
      await clock.sleep(0);
      this.#d.onInstallationsKnown?.([...followedIds]);
      await clock.sleep(0);
      const chargers = await api.chargers({ signal });
      const records = mergeChargers(chargers, fromHierarchy, followedIds, this.#d.followed !== undefined);
      const snapshot: InventorySnapshot = {
        installations: installations.map((i) => ({ id: i.Id.toLowerCase(), name: i.Name ?? null, data: i })),
        circuits,
        chargers: records,
        hierarchyMissing,
      };
      const change = await this.#write(() => this.#d.store.replace(snapshot, clock.now()));
      const now = clock.now();
      this.#d.observations.invalidate();
      await this.#write(() => this.#d.daemon.inventory(now, this.nextScheduled(now + INVENTORY_SPACING_MS)));
      this.#noteHierarchy(
        installations.map((i) => i.Id.toLowerCase()),
        hierarchyMissing,
      );
      log.info(
        {
          installations: installations.length,
          chargers: records.length,
          ...change,
          ms: now - started,
        },
        'inventory pass completed',
      );
      this.#problems.ok('inventory', 'inventory passes work again');
      this.#d.onRefreshed?.([...followedIds], change);
      return true;
    } catch (err) {
      this.#d.observations.invalidate(); // what the pass had seen is not the inventory after all
      if (!this.#stopped) this.#failed(reason, err);
      throw err;
    }
  }

  #failed(reason: string, err: unknown): void {
    const next = this.nextScheduled();
    const sentence = `the inventory pass failed (${reason}: ${describeError(err)}); the stored inventory is kept${
      next === undefined ? '' : ` and the next pass is at ${new Date(next).toISOString()}`
    }`;
    this.#problems.fail('inventory', sentence, err);
  }

  #noteHierarchy(installationIds: string[], missing: Set<string>): void {
    for (const id of installationIds) {
      if (missing.has(id)) {
        this.#d.syncStatus.setDetail(
          id,
          'hierarchy answered 204 (provisioning or no access): circuits kept from the last pass',
        );
      }
    }
  }

  async #constantsIfDue(signal: AbortSignal): Promise<void> {
    const at = this.#d.daemon.read()?.constants_refreshed_at;
    const now = this.#d.clock.now();
    if (at && now - Date.parse(at) < CONSTANTS_SPACING_MS) return;
    try {
      const constants = await this.#d.api.constants({ signal });
      const rows: { deviceType: number; stateId: number; name: string }[] = [];
      for (const [name, id] of Object.entries(constants.Observations ?? {}))
        rows.push({ deviceType: -1, stateId: id, name });
      for (const schema of Object.values(constants.Schema ?? {})) {
        if (schema.DeviceType === null || schema.DeviceType === undefined) continue;
        for (const [name, id] of Object.entries(schema.ObservationIds ?? {})) {
          rows.push({ deviceType: schema.DeviceType, stateId: id, name });
        }
      }
      await this.#write(() => this.#d.store.replaceStateNames(rows));
      const values = stateValues(constants);
      await this.#write(() => this.#d.store.replaceStateValues(values));
      this.#d.observations.invalidate();
      await this.#write(() => this.#d.daemon.constantsRefreshed(now));
    } catch (err) {
      this.#d.log.warn(
        { err: describeError(err) },
        'could not read /api/constants; state names stay as they were',
      );
    }
  }
}

/**
 * What values mean, where /api/constants has a map named for the observation in the plural (710
 * ChargerOperationMode → ChargerOperationModes): `{ Connected_Charging: 3, … }` read the other way round.
 */
export function stateValues(constants: Constants): { stateId: number; value: string; meaning: string }[] {
  const all = constants as Record<string, unknown>;
  const rows: { stateId: number; value: string; meaning: string }[] = [];
  for (const [name, stateId] of Object.entries(constants.Observations ?? {})) {
    const map = all[`${name}s`];
    if (!map || typeof map !== 'object' || Array.isArray(map)) continue;
    for (const [meaning, value] of Object.entries(map))
      if (typeof value === 'number' && Number.isInteger(value))
        rows.push({ stateId, value: String(value), meaning });
  }
  return rows;
}

/** Circuits and chargers of one installation's hierarchy; bad parts are skipped. */
export function parseHierarchy(
  installationId: string,
  body: unknown,
  circuits: CircuitRecord[],
): ChargerRecord[] {
  const h = hierarchySchema.safeParse(body);
  if (!h.success) return [];
  const out: ChargerRecord[] = [];
  for (const raw of h.data.Circuits ?? []) {
    const c = circuitSchema.safeParse(raw);
    if (!c.success) continue;
    const circuitId = c.data.Id.toLowerCase();
    const { Chargers, ...circuitData } = c.data;
    circuits.push({
      id: circuitId,
      installationId,
      name: c.data.Name ?? null,
      maxCurrent: c.data.MaxCurrent ?? null,
      data: circuitData,
    });
    for (const rawCharger of Chargers ?? []) {
      const ch = hierarchyChargerSchema.safeParse(rawCharger);
      if (!ch.success) continue;
      out.push({
        id: ch.data.Id.toLowerCase(),
        installationId,
        circuitId,
        deviceId: ch.data.DeviceId ?? null,
        name: ch.data.Name ?? null,
        deviceType: ch.data.DeviceType ?? null,
        data: ch.data,
      });
    }
  }
  return out;
}

/** The charger list and the hierarchies, merged: the list object is the richer `data`. */
export function mergeChargers(
  list: Charger[],
  fromHierarchy: Map<string, ChargerRecord>,
  followed: Set<string>,
  filtered: boolean,
): ChargerRecord[] {
  const out = new Map<string, ChargerRecord>();
  for (const c of list) {
    const id = c.Id.toLowerCase();
    const h = fromHierarchy.get(id);
    const installationId = c.InstallationId?.toLowerCase() ?? h?.installationId ?? null;
    if (filtered && !(installationId && followed.has(installationId))) continue;
    out.set(id, {
      id,
      installationId,
      circuitId: h?.circuitId ?? c.CircuitId?.toLowerCase() ?? null,
      deviceId: c.DeviceId ?? h?.deviceId ?? null,
      name: c.Name ?? h?.name ?? null,
      deviceType: c.DeviceType ?? h?.deviceType ?? null,
      data: c,
    });
  }
  for (const [id, h] of fromHierarchy) if (!out.has(id)) out.set(id, h);
  return [...out.values()];
}
