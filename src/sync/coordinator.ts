/**
 * How the daemon's parts react to each other, in named methods (issue 14): `wiring.ts` only builds the parts,
 * inside the coordinator's constructor, and hands each the coordinator's method for what it reports (no part
 * holds a closure of its own over another). A harness can drive the whole daemon through these methods, and
 * every reaction is in one place:
 * - the inventory was refreshed → follow its installations (live events, or polling), resync the reads, a
 *   first charge-history pass for new installations;
 * - an inventory pass saw chargers → name their observations, read the new ones;
 * - the first inventory pass knows its installations → follow them now (its charger pages may take an hour);
 * - observations were applied (events and polls alike) → look up unknown chargers; a session's start or end
 *   pushed live → a follow-up read;
 * - an installation's live events connected or dropped → polling off or on;
 * - live events had a gap → re-read its chargers and its charge history;
 * - a lookup found an unknown charger → read it, and give it its reconciliation slot;
 * - a request settled, a live observation's lag, a command's outcome → the metrics;
 * - a user group's message → the installation of its charger, unless a lookup found it outside the followed;
 * - charge history asks whether state reads are overdue (it yields to them);
 * - a command was carried out → a follow-up read of its charger.
 */
import { describeError } from '../log.js';
import type { ObservationSource } from '../observation.js';
import type { ChargerRecord, InventoryStore } from '../store/inventory.js';
import type { ApplyResult, ObservationStore } from '../store/observations.js';
import type { SyncStatusStore } from '../store/sync-status.js';
import type { ChargeHistorySync } from './charge-history.js';
import type { CommandRunner } from './commands.js';
import type { LiveEvents } from './live-events.js';
import type { ChargerLookup } from './lookup.js';
import type { Metrics } from './metrics.js';
import type { Problems } from './problems.js';
import type { StateReader } from './state-reader.js';

/** The parts the coordinator moves; built by the function its constructor is given, which gets the reactions. */
export interface CoordinatedParts {
  observations: ObservationStore;
  inventory: Pick<InventoryStore, 'findCharger'>;
  syncStatus: SyncStatusStore;
  stateReader: StateReader;
  lookup: ChargerLookup;
  live: LiveEvents | undefined;
  chargeHistory: ChargeHistorySync | undefined;
  problems: Problems;
  /** Commands through the daemon (CONTRACT §10): a sent one waits for its change to be observed. */
  commands?: CommandRunner;
  /** ZAPTEC_METRICS: what the reactions count. */
  metrics?: Metrics;
}

export class Coordinator {
  readonly #events: boolean;
  #parts: CoordinatedParts | undefined;
  #stopping = false;
  /** The installations followed now (none before a first inventory pass has named any). */
  #following: readonly string[] = [];

  /**
   * `events`: ZAPTEC_EVENTS is on. `build` makes the parts, handing each the reactions it reports to; a part
   * may store them, not call them, while it is built.
   */
  constructor(events: boolean, build: (reactions: Coordinator) => CoordinatedParts) {
    this.#events = events;
    this.#parts = build(this);
  }

  get #p(): CoordinatedParts {
    if (!this.#parts)
      throw new Error('a reaction of the coordinator was called while its parts were being built');
    return this.#parts;
  }

  /** An inventory pass completed: these are the installations followed now. */
  inventoryRefreshed(installationIds: string[]): void {
    this.followInstallations(installationIds);
    this.#p.stateReader.resync();
    this.#p.chargeHistory?.wake();
  }

  /**
   * The first inventory pass knows its installations and their chargers (the hierarchies are read; the charger
   * pages may take over an hour at 30,000 chargers): their live events connect now, not after the pass. A daemon
   * that has run before follows its stored installations from the start, and waits for the pass as before.
   */
  installationsKnown(ids: string[]): void {
    if (this.#following.length === 0 && ids.length > 0) this.followInstallations(ids);
  }

  /** At start and after each inventory pass: status rows, polling until live events connect, subscriptions. */
  followInstallations(ids: string[]): void {
    this.#following = ids;
    const { syncStatus, stateReader, live, problems } = this.#p;
    syncStatus.retain(ids);
    syncStatus.ensureAll(ids, this.#events ? 'connecting' : 'off');
    // Polled until their live events say they are connected; all in one step.
    stateReader.setPolling(
      ids.filter((id) => !live?.connected(id)),
      true,
    );
    if (live && !this.#stopping)
      live
        .follow(ids)
        .catch((err) =>
          problems.fail('live-events', `cannot start or stop live events (${describeError(err)})`, err),
        );
  }

  /** An inventory pass in flight saw these chargers (before it commits). */
  chargersSeen(chargers: ChargerRecord[]): void {
    this.#p.observations.expect(chargers);
    this.#p.stateReader.prefetch(chargers.map((c) => c.id));
  }

  /** Observations were committed, from live events or a state read. */
  applied(result: ApplyResult, source: ObservationSource): void {
    for (const id of result.unknownChargers) this.#p.lookup.unknownSeen(id);
    // A read found its own changes: only a pushed session start or end needs the follow-up read.
    if (source === 'event') for (const change of result.modeChanges) this.#p.stateReader.modeChanged(change);
    // Back online (a restart, a firmware update): values may have changed without a push; one read after.
    if (source === 'event') for (const id of result.cameOnline) this.#p.stateReader.cameOnline(id);
    if (result.applied > 0) this.#p.commands?.observed();
  }

  /** An installation's live events connected (polling stops) or were lost (polling starts). */
  eventsConnected(installationId: string, connected: boolean): void {
    this.#p.stateReader.setPolling(installationId, !connected);
  }

  /** Live events of an installation came back after a gap. */
  eventsGap(installationId: string): void {
    this.#p.stateReader.afterGap(installationId);
    this.#p.chargeHistory?.afterGap(installationId);
  }

  /**
   * A lookup found a charger the inventory did not know: it is read now, and gets its reconciliation slot at
   * once (the next inventory pass may be an hour away, or failing).
   */
  chargerFound(chargerId: string): void {
    this.#p.stateReader.resync();
    this.#p.stateReader.readSoon(chargerId, 'newly found charger');
  }

  /** An API request settled (CONTRACT §7 metrics: requests by group and outcome, 429s). */
  requestSettled(groups: readonly string[], outcome: string): void {
    const metrics = this.#p.metrics;
    if (!metrics) return;
    for (const group of groups) metrics.apiRequests.inc({ group, outcome });
    if (outcome === 'rate_limited') metrics.api429.inc();
  }

  /** A live observation was committed this long after Zaptec observed it. */
  eventCommitted(lagSeconds: number): void {
    this.#p.metrics?.eventLag.observe(lagSeconds);
  }

  /** A command got its final outcome (CONTRACT §10). */
  commandFinished(action: string, outcome: string): void {
    this.#p.metrics?.commands.inc({ action, outcome });
  }

  /** A command was carried out: one read of its charger soon, within its follow-up bucket. */
  commandCarriedOut(chargerId: string): void {
    this.#p.stateReader.afterChange(chargerId);
  }

  /** A user group's message: the installation its charger belongs to, as the inventory knows it. */
  installationOf(chargerId: string): string | undefined {
    return this.#p.inventory.findCharger(chargerId)?.installation_id ?? undefined;
  }

  /** A user group's message of a charger a lookup found under an installation this daemon does not follow. */
  notFollowed(chargerId: string): boolean {
    return this.#p.lookup.notFollowed(chargerId);
  }

  /** Charge history yields while reads of stale chargers are due (the first start's pass above all). */
  stateReadsOverdue(): boolean {
    return this.#p.stateReader.overdue() > 0;
  }

  /** The daemon stops: no new subscriptions from here on. */
  stopping(): void {
    this.#stopping = true;
  }
}
