/**
 * Looking up one charger the inventory does not know: by serial through the charger list's name
 * filter, by id through `/api/chargers/{id}`; a coalesced full inventory pass only when those cannot
 * find it and the 60-minute spacing allows. One lookup per charger in flight, however many triggers.
 */
import { RateLimitedError } from '../http/errors.js';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import { NULL_CHARGER_ID } from '../observation.js';
import type { ChargerRecord, CircuitRecord, InventoryStore } from '../store/inventory.js';
import type { ObservationStore } from '../store/observations.js';
import type { RefreshOutcome } from '../store/refresh-requests.js';
import type { Clock } from '../time.js';
import { quietAbortController } from '../time.js';
import type { ZaptecApi } from '../zaptec/api.js';
import type { Charger } from '../zaptec/schemas.js';
import { type InventorySync, parseHierarchy } from './inventory.js';

/** An id that was looked up and not found is not looked up again for this long (events keep coming). */
const NEGATIVE_CACHE_MS = 60 * 60_000;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface LookupResult {
  outcome: RefreshOutcome;
  detail: string;
  chargerId?: string;
  /** For `deferred`: when it will be tried again. */
  retryAt?: number;
}

export interface LookupDeps {
  api: ZaptecApi;
  inventory: InventoryStore;
  inventorySync: InventorySync;
  observations: ObservationStore;
  clock: Clock;
  log: Logger;
  /** A charger was found: read its state. */
  onFound: (chargerId: string) => void;
  /**
   * ZAPTEC_INSTALLATIONS (lower case): a charger found under another installation is not added (a user group
   * may carry installations this daemon does not follow). All are followed when undefined.
   */
  followed?: readonly string[];
}

export class ChargerLookup {
  readonly #d: LookupDeps;
  readonly #inflight = new Map<string, Promise<LookupResult>>();
  readonly #notFound: ForgetfulSet;
  /** Chargers found under an installation ZAPTEC_INSTALLATIONS leaves out: ignored for an hour. */
  readonly #notFollowed: ForgetfulSet;
  readonly #followed: ReadonlySet<string> | undefined;
  #stopped = false;
  /** Many waits share it (workers, requests): no listener-leak warning for them. */
  readonly #abort = quietAbortController();

  constructor(deps: LookupDeps) {
    this.#d = deps;
    this.#followed = deps.followed && new Set(deps.followed);
    this.#notFound = new ForgetfulSet(deps.clock, NEGATIVE_CACHE_MS);
    this.#notFollowed = new ForgetfulSet(deps.clock, NEGATIVE_CACHE_MS);
  }

  /** A charger a lookup found under an installation this daemon does not follow (its events are not kept). */
  notFollowed(chargerId: string): boolean {
    return this.#notFollowed.has(chargerId);
  }

  stop(): void {
    this.#stopped = true;
    this.#abort.abort();
  }

  /** A charger id seen in an event or in state data that the inventory lacks: look it up, quietly. */
  unknownSeen(id: string): void {
    if (id === NULL_CHARGER_ID || this.#stopped) return;
    if (this.#notFound.has(id) || this.notFollowed(id) || this.#d.inventory.findCharger(id)) return;
    void this.lookup(id, 'seen in state data');
  }

  lookup(key: string, trigger: string): Promise<LookupResult> {
    const k = key.trim().toLowerCase();
    let p = this.#inflight.get(k);
    if (!p) {
      p = this.#run(k, trigger).finally(() => this.#inflight.delete(k));
      this.#inflight.set(k, p);
    }
    return p;
  }

  async #run(key: string, trigger: string): Promise<LookupResult> {
    const { log } = this.#d;
    if (key === NULL_CHARGER_ID)
      return { outcome: 'not_found', detail: 'the all-zero ChargerId belongs to no charger' };
    try {
      const found = await this.#single(key);
      if (found) return found;
      const passed = await this.#d.inventorySync.refresh(`unknown charger (${trigger})`);
      const after = this.#d.inventory.findCharger(key);
      if (passed && after?.active) {
        this.#d.onFound(after.id);
        return { outcome: 'found', detail: 'found by a full inventory refresh', chargerId: after.id };
      }
      this.#notFound.add(key);
      const detail = passed
        ? 'not in the inventory after a full refresh'
        : `no charger with that ${GUID.test(key) ? 'id' : 'serial'}; a full inventory refresh is not allowed before ${new Date(this.#d.inventorySync.allowedAt()).toISOString()}`;
      log.info({ charger: key, trigger }, 'charger lookup: not found');
      return { outcome: 'not_found', detail };
    } catch (err) {
      if (err instanceof RateLimitedError) {
        return {
          outcome: 'deferred',
          detail: `API budget spent; will try at ${new Date(err.retryAt).toISOString()}`,
          retryAt: err.retryAt,
        };
      }
      log.warn({ charger: key, err: describeError(err) }, 'charger lookup failed');
      return { outcome: 'failed', detail: describeError(err) };
    }
  }

  /** At most two inventory calls: the charger by serial or id, and its installation's hierarchy if needed. */
  async #single(key: string): Promise<LookupResult | undefined> {
    const o = { deadline: this.#d.clock.now() + 30_000, signal: this.#abort.signal };
    const charger: Charger | undefined = GUID.test(key)
      ? await this.#d.api.charger(key, o)
      : await this.#d.api.chargerBySerial(key, o);
    if (!charger) return undefined;
    const id = charger.Id.toLowerCase();
    const installationId = charger.InstallationId?.toLowerCase() ?? null;
    if (this.#followed && !(installationId && this.#followed.has(installationId))) {
      // Looked up again in an hour at the earliest, like a charger not found: the installation may be added.
      this.#notFollowed.add(id);
      this.#d.log.info(
        { charger: id, installation: installationId },
        'charger lookup: its installation is not in ZAPTEC_INSTALLATIONS; ignored',
      );
      return {
        outcome: 'not_found',
        detail: `charger ${charger.DeviceId ?? id} belongs to ${installationId ? `installation ${installationId}` : 'no installation'}, which ZAPTEC_INSTALLATIONS does not follow`,
      };
    }
    let circuitId = charger.CircuitId?.toLowerCase() ?? null;
    const circuits: CircuitRecord[] = [];
    if (!circuitId && installationId) {
      const h = await this.#d.api.hierarchy(installationId, o);
      const placed = h === undefined ? [] : parseHierarchy(installationId, h, circuits);
      circuitId = placed.find((c) => c.id === id)?.circuitId ?? null;
    }
    const record: ChargerRecord = {
      id,
      installationId,
      circuitId,
      deviceId: charger.DeviceId ?? null,
      name: charger.Name ?? null,
      deviceType: charger.DeviceType ?? null,
      data: charger,
    };
    this.#d.inventory.upsertCharger(record, this.#d.clock.now(), circuits);
    this.#d.observations.invalidate();
    this.#notFound.delete(key);
    this.#notFound.delete(id);
    this.#d.log.info({ charger: id, serial: record.deviceId }, 'charger lookup: found');
    this.#d.onFound(id);
    return {
      outcome: 'found',
      detail: `charger ${record.deviceId ?? id} (${record.name ?? 'no name'})`,
      chargerId: id,
    };
  }
}

/** Keys remembered for a while: `has` is false once `ttlMs` has passed since `add`, and the key is forgotten. */
class ForgetfulSet {
  readonly #until = new Map<string, number>();
  readonly #clock: Clock;
  readonly #ttlMs: number;

  constructor(clock: Clock, ttlMs: number) {
    this.#clock = clock;
    this.#ttlMs = ttlMs;
  }

  add(key: string): void {
    this.#until.set(key, this.#clock.now() + this.#ttlMs);
  }

  has(key: string): boolean {
    const until = this.#until.get(key);
    if (until === undefined) return false;
    if (until > this.#clock.now()) return true;
    this.#until.delete(key);
    return false;
  }

  delete(key: string): void {
    this.#until.delete(key);
  }
}
