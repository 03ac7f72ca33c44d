/**
 * State reads (`/api/chargers/{id}/state`), only where they are needed:
 * - at start, chargers whose stored state is older than ZAPTEC_RECONCILE_MINUTES, as fast as the budget allows;
 * - reconciliation: each charger in its own slot, the slots spread evenly over the interval (no bursts);
 * - one extra read about 20 s after a session starts or ends (710 leaves or enters 1), since Zaptec does not
 *   push every value that changes then; a burst is one read after its last change, and one charger's
 *   follow-ups come from a bucket of 2 refilled every 12 minutes (mode changes within a session need no read);
 * - after a live-event gap, that installation's chargers;
 * - where live events are off or down, polling as often as the budget allows while leaving room for the rest.
 * Never the same charger twice within 15 s (the API layer enforces that across restarts too).
 */
import { CredentialsError, HttpStatusError, RateLimitedError } from '../http/errors.js';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import { MEASUREMENTS } from '../observation.js';
import type { ChargerAge, InventoryStore } from '../store/inventory.js';
import type { ApplyResult, ObservationStore } from '../store/observations.js';
import type { ReconcileSpacingStore } from '../store/reconcile-spacing.js';
import type { SyncStatusStore } from '../store/sync-status.js';
import { whenWritable } from '../store/writable.js';
import { type Clock, quietAbortController } from '../time.js';
import type { ZaptecApi } from '../zaptec/api.js';
import { toObservations } from '../zaptec/message.js';
import { Problems } from './problems.js';
import type { Progress } from './progress.js';

/** Zaptec pushes the mode change but not every value of a session start or end: read again this much later. */
export const MODE_CHANGE_FOLLOW_UP_MS = 20_000;
/**
 * Follow-up reads of one charger: a bucket of 2 (a short session's start and end, both read at once) that
 * refills one every 12 minutes. Whatever the charger does, at most 5 follow-ups an hour at steady state, so
 * with the hourly reconciliation read at most 6 calls per charger-hour (CONTRACT §4); a session end that
 * finds the bucket empty is read when it refills, never skipped.
 */
export const FOLLOW_UP_SPACING_MS = 12 * 60_000;
const FOLLOW_UP_BURST = 2;
const FOLLOW_UP = 'follow-up after a session started or ended';

/** 710 ChargerOperationMode 1 is Disconnected: leaving it starts a session, entering it ends one. */
export function isSessionBoundary(change: {
  value: string | null;
  previous: string | null | undefined;
}): boolean {
  return change.value !== change.previous && (change.value === '1' || change.previous === '1');
}
/** Parallel reads: enough to hide the API's latency; admission does the pacing. */
const WORKERS = 4;
/** Every change to the schedule wakes the workers; an idle one looks again after this long at the latest. */
const IDLE_RECHECK_MS = 60_000;
/** A read may wait this long for the budget before it is rescheduled instead. */
const READ_DEADLINE_MS = 30_000;
/** Polling may use this share of the budget; the rest stays for inventory, lookups and follow-ups. */
const POLLING_SHARE = 0.5;
/** The fastest the budget allows per second (Zaptec's bucket as configured in the profile). */
const BURST_RATE_PER_S = 9;
/** After a failed read (other than the budget), the charger is tried again this much later. */
const RETRY_AFTER_FAILURE_MS = 5 * 60_000;
/** A worker whose own step failed (not a read: the schedule, the database) goes on after this pause. */
const WORKER_PAUSE_AFTER_ERROR_MS = 5_000;

/** A state whose new value a reconciliation read finds means the live events missed something. */
const revealing = (stateId: number) => !MEASUREMENTS.has(stateId);

/** What the reader needs of the API (tests give a stand-in). */
export type StateApi = Pick<ZaptecApi, 'state' | 'stateReadableAt' | 'lastStateRead' | 'chargersRead'>;

export interface StateReaderDeps {
  api: StateApi;
  observations: ObservationStore;
  inventory: InventoryStore;
  syncStatus: SyncStatusStore;
  clock: Clock;
  log: Logger;
  /** ZAPTEC_RECONCILE_MINUTES: the shortest spacing of a charger's reconciliation reads. */
  reconcileMs: number;
  /**
   * ZAPTEC_RECONCILE_MAX_MINUTES: the longest. A charger whose reconciliation reads keep revealing nothing the
   * live events had not said is read less often, doubling up to this; one that reveals something is back at the
   * shortest. Equal to `reconcileMs` (the default here): every charger at the shortest.
   */
  reconcileMaxMs?: number;
  /** Where the learned spacings are kept across restarts. */
  spacings?: ReconcileSpacingStore;
  requestsPerMinute: number;
  /** Observations were stored: the coordinator reacts (lookups of unknown chargers). */
  onApplied?: (result: ApplyResult) => void;
  /** Where failing reads are reported (status, /healthz); a registry of its own (its log) when absent. */
  problems?: Problems;
  /** Where the reads of stale chargers (the first start's pass above all) report how far they are. */
  progress?: Progress;
  /** Chargers per page of a resync's read of the stored ages (tests make it small). */
  agesPage?: number;
}

const STALE_PASS = 'stale-state-reads';

interface Slot {
  installationId: string | null;
  due: number;
  cadenceMs: number;
  /** The charger's reconciliation spacing as learned (reconcileMs … reconcileMaxMs). */
  spacingMs: number;
  /**
   * When the charger was last heard from as the resync found it (epoch ms): with no read on record (its
   * state kept fresh by live events alone) its slot counts from this.
   */
  heardAt: number;
}

/** Chargers whose stored ages one step of a resync reads (see `resync`). */
const AGES_PAGE = 4_000;
/** Chargers an inventory pass named whose first reads one step queues (about 10 ms at a start). */
const PREFETCH_PAGE = 1_000;

/** A charger as the schedule needs it: its installation, and when it was last heard from (epoch ms; 0: never). */
interface Heard {
  id: string;
  installationId: string | null;
  at: number;
}

function heard(ages: readonly ChargerAge[]): Heard[] {
  return ages.map((a) => ({
    id: a.id,
    installationId: a.installation_id,
    at: a.received_at ? Date.parse(a.received_at) : 0,
  }));
}

/**
 * Slots closer than this share of their even spacing (cadence / n) are moved apart. Below 1, so that a fleet
 * already spread (reads a little late or early by the budget) keeps its times, and a bunch is spread over 90 %
 * of the cadence.
 */
const SPREAD_SHARE = 0.9;

/**
 * Each slot's time: at the earliest it may come (a cadence after its last read), moved later only as far as
 * needed to be `SPREAD_SHARE` × cadence / n after the one before; of slots as early, the first given first.
 * A start pass that read the whole fleet in a minute would otherwise bring it all back in that minute a cadence
 * later, and every cadence after; a fleet spread already (after a restart: the reads of the last cadence) keeps
 * its times.
 */
export function spreadDues(
  slots: readonly { id: string; earliest: number }[],
  cadence: number,
  maxDelayMs = cadence,
): Map<string, number> {
  const gap = (SPREAD_SHARE * cadence) / Math.max(1, slots.length);
  const dues = new Map<string, number>();
  let previous = Number.NEGATIVE_INFINITY;
  // A stable sort: slots that may come at the same time keep the caller's order (comparing their ids as a
  // tie-break cost 30 ms at 30,000 chargers, most of them tied after a start).
  for (const s of [...slots].sort((a, b) => a.earliest - b.earliest)) {
    previous = Math.min(s.earliest + maxDelayMs, Math.max(s.earliest, previous + gap));
    dues.set(s.id, Math.round(previous));
  }
  return dues;
}

export class StateReader {
  readonly #d: StateReaderDeps;
  readonly #problems: Problems;
  readonly #slots = new Map<string, Slot>();
  readonly #urgent = new Map<string, { due: number; reason: string }>();
  readonly #inflight = new Set<string>();
  readonly #polling = new Set<string>();
  /** Chargers whose state read answered a lasting 4xx (404: removed, 403: no access), reported once each. */
  readonly #refused = new Set<string>();
  /** Stale chargers queued for a read (the start pass) and not read yet: its progress. */
  readonly #stale = new Set<string>();
  /** When each charger's operation mode last crossed a session boundary (its follow-up reads after it). */
  readonly #lastBoundary = new Map<string, number>();
  /** Each charger's follow-up bucket as GCRA's theoretical arrival time (epoch ms). */
  readonly #followUpTat = new Map<string, number>();
  /** Many waits share it (workers, requests): no listener-leak warning for them. */
  readonly #abort = quietAbortController();
  readonly #waiters = new Set<() => void>();
  #workers: Promise<void>[] = [];
  #stopped = false;
  /** A resync reading its pages, and whether another was asked for meanwhile. */
  #paging: Promise<void> | undefined;
  #resyncAgain = false;
  /** Reads completed, for the watchdog and metrics. */
  reads = 0;

  constructor(deps: StateReaderDeps) {
    this.#d = deps;
    this.#problems = deps.problems ?? new Problems(deps.log, deps.clock);
  }

  /** Queues the start pass and the reconciliation slots, then starts the workers. */
  start(): void {
    this.resync();
    for (let i = 0; i < WORKERS; i++) this.#workers.push(this.#work());
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.#wakeAll();
    await Promise.all(this.#workers);
  }

  /**
   * Brings the schedule in line with the inventory: stale chargers are read now; every active charger
   * gets a slot, in order of its last read, evenly spread over its cadence. The stored ages are read in pages
   * (each about 40 ms at 30,000 chargers with their states stored; all at once held the event loop for 270 ms),
   * the event loop running between them; a fleet within one page is brought in line at once. A resync asked
   * for while pages are read runs again after them.
   */
  resync(): void {
    if (this.#paging) {
      this.#resyncAgain = true;
      return;
    }
    const first = this.#d.inventory.stateAges(undefined, this.#agesPage);
    if (first.length < this.#agesPage) return this.#spread(this.#schedule(heard(first)));
    this.#paging = this.#readPages(first)
      .then(async (chargers) => {
        if (this.#stopped) return;
        const earliest = this.#schedule(chargers);
        await this.#d.clock.sleep(0); // each half within the event loop's 100 ms at 30,000 chargers
        if (!this.#stopped) this.#spread(earliest);
      })
      .catch((err: unknown) =>
        this.#d.log.warn({ err: describeError(err) }, 'cannot read the stored states for the schedule'),
      )
      .finally(() => {
        this.#paging = undefined;
        if (this.#resyncAgain && !this.#stopped) {
          this.#resyncAgain = false;
          this.resync();
        }
      });
  }

  get #agesPage(): number {
    return this.#d.agesPage ?? AGES_PAGE;
  }

  /** Resolves when no resync is reading its pages. */
  async settled(): Promise<void> {
    while (this.#paging) await this.#paging;
  }

  async #readPages(first: ChargerAge[]): Promise<Heard[]> {
    const chargers = heard(first);
    for (let page = first; page.length === this.#agesPage && !this.#stopped; ) {
      await this.#d.clock.sleep(0); // the event loop runs between pages (a timer, on the injected clock)
      page = this.#d.inventory.stateAges(page.at(-1)!.id, this.#agesPage);
      chargers.push(...heard(page));
    }
    await this.#d.clock.sleep(0); // and before the schedule is made from them
    return chargers;
  }

  /**
   * The schedule's first half: slots of chargers gone are dropped, new chargers get theirs (not due before
   * `#spread` gives them their times) and the stale ones a read now. Returns when each new slot may come.
   */
  #schedule(chargers: readonly Heard[]): { id: string; earliest: number; cadence: number }[] {
    const now = this.#d.clock.now();
    const active = new Set(chargers.map((a) => a.id));
    const refused = this.#refused.size;
    for (const id of this.#slots.keys()) {
      if (active.has(id)) continue;
      // Gone from the inventory: its slot, and any read still queued for it (a retry, a follow-up).
      this.#slots.delete(id);
      this.#urgent.delete(id);
      this.#refused.delete(id);
      this.#staleDone(id);
    }
    // The last refused chargers are gone: that problem is over (a failure of another kind is not).
    if (refused > 0 && this.#refused.size === 0) this.#problems.ok('state', 'state reads work again');
    const newcomers = chargers.filter((a) => !this.#slots.has(a.id)).sort((a, b) => a.at - b.at);
    // Every slot first: the polling cadence depends on how many chargers are polled.
    const learned = newcomers.length > 0 ? (this.#d.spacings?.all() ?? new Map<string, number>()) : undefined;
    const created: Slot[] = newcomers.map((a) => {
      const slot: Slot = {
        installationId: a.installationId,
        due: Number.POSITIVE_INFINITY,
        cadenceMs: 0,
        heardAt: a.at,
        spacingMs: this.#clampSpacing(learned?.get(a.id)),
      };
      this.#slots.set(a.id, slot);
      return slot;
    });
    const earliest: { id: string; earliest: number; cadence: number }[] = [];
    const pollMs = this.pollIntervalMs();
    let stale = 0;
    newcomers.forEach((a, i) => {
      const slot = created[i]!;
      const cadence = this.#cadence(a.installationId, slot.spacingMs, pollMs);
      const isStale = now - a.at >= this.#d.reconcileMs;
      // A read in flight (started before the inventory pass committed) is the start read already.
      if (isStale && !this.#inflight.has(a.id) && this.#queueStale(a.id, 'start: stored state is stale', now))
        stale++;
      slot.cadenceMs = cadence;
      // Never sooner than a cadence after the charger was last heard from or read (or is read now, when stale).
      const basis = Math.max(this.#reconciledAt(a.id, a.at), isStale ? now : 0);
      earliest.push({ id: a.id, earliest: Math.max(now, basis + cadence), cadence });
    });
    this.#countStale(stale);
    return earliest;
  }

  /** The new slots' times, spread over their cadence, and every cadence brought in line with the polling. */
  #spread(earliest: readonly { id: string; earliest: number; cadence: number }[]): void {
    for (const cadence of new Set(earliest.map((e) => e.cadence))) {
      // Moved later by at most the shortest spacing: a charger read at the longest is never read later than
      // the longest plus the shortest (the reconciliation's ceiling).
      const dues = spreadDues(
        earliest.filter((e) => e.cadence === cadence),
        cadence,
        this.#d.reconcileMs,
      );
      for (const [id, due] of dues) {
        const slot = this.#slots.get(id);
        if (slot) slot.due = due;
      }
    }
    this.#respread();
    this.#wakeAll();
  }

  /**
   * Chargers an inventory pass in flight has seen: the ones without a slot that were never read are read
   * now, while the pass waits for the lists budget (their slots come with the pass's `resync`). Looked at in
   * steps of AGES_PAGE, the event loop running between them (each asks the ledger when the charger was read:
   * 30,000 at once held the loop for about 200 ms).
   */
  prefetch(chargerIds: readonly string[]): void {
    void this.#prefetch(chargerIds).catch((err: unknown) =>
      this.#d.log.warn({ err: describeError(err) }, 'cannot queue the first reads of the chargers seen'),
    );
  }

  async #prefetch(chargerIds: readonly string[]): Promise<void> {
    // A page per turn of the event loop, the first one too: the caller (an inventory pass naming 30,000
    // chargers) has work of its own in this turn.
    const size = Math.min(this.#agesPage, PREFETCH_PAGE);
    for (let i = 0; i < chargerIds.length && !this.#stopped; i += size) {
      await this.#d.clock.sleep(0);
      const now = this.#d.clock.now();
      let stale = 0;
      // One look at the page's reads on record (a look per charger took 190 ms of a page of 4,000 at a start).
      const page = chargerIds.slice(i, i + size).filter((id) => !this.#slots.has(id));
      const read = this.#d.api.chargersRead(page);
      for (const id of page)
        if (!read.has(id) && this.#queueStale(id, 'start: charger seen by the inventory pass', now)) stale++;
      this.#countStale(stale);
      this.#wakeAll();
    }
  }

  /**
   * Queues a read of a charger whose stored state is stale; true when the pass's progress has not counted it yet.
   * The callers count many at once and wake the workers once (30,000 at a start).
   */
  #queueStale(id: string, reason: string, at: number): boolean {
    this.#queue(id, reason, at);
    if (this.#stale.has(id)) return false;
    this.#stale.add(id);
    return true;
  }

  #countStale(n: number): void {
    this.#d.progress?.add(STALE_PASS, 'state reads of stale chargers', 'chargers', n);
  }

  #staleDone(id: string): void {
    if (this.#stale.delete(id)) this.#d.progress?.done(STALE_PASS);
  }

  /** A read as soon as the budget and the 15 s rule allow (or at `at`). */
  readSoon(id: string, reason: string, at = this.#d.clock.now()): void {
    this.#queue(id, reason, at);
    this.#wakeAll();
  }

  /** The charger's urgent read at `at`, unless one is queued sooner. */
  #queue(id: string, reason: string, at: number): void {
    const existing = this.#urgent.get(id);
    if (!existing || existing.due > at) this.#urgent.set(id, { due: at, reason });
  }

  /**
   * The operation mode changed. A session's start or end gets one read about 20 s after the burst's last
   * change (each change pushes it back), when the charger's follow-up bucket allows.
   */
  modeChanged(change: {
    chargerId: string;
    value: string | null;
    previous: string | null | undefined;
  }): void {
    if (!isSessionBoundary(change)) return;
    const id = change.chargerId;
    this.#lastBoundary.set(id, this.#d.clock.now());
    this.#followUp(id);
  }

  /**
   * The charger came back online (a restart, a firmware update, an outage): one read about 20 s later, from the
   * follow-up bucket (its values, the firmware's version among them, may have changed without a push).
   */
  cameOnline(chargerId: string): void {
    this.afterChange(chargerId);
  }

  /**
   * Something changed a charger's values now (it came back online, a command was carried out): one read about
   * 20 s later, from its follow-up bucket, so that whatever else happens the charger stays within CONTRACT §4's
   * 6 calls an hour.
   */
  afterChange(id: string): void {
    this.#lastBoundary.set(id, this.#d.clock.now());
    this.#followUp(id);
  }

  /** The follow-up read of a charger's last session boundary: about 20 s after it, when the bucket allows. */
  #followUp(id: string): void {
    const boundary = this.#lastBoundary.get(id) ?? this.#d.clock.now();
    const due = Math.max(boundary + MODE_CHANGE_FOLLOW_UP_MS, this.#followUpAllowedAt(id));
    const pending = this.#urgent.get(id);
    // A read due sooner for another reason would come before the values settle: this one replaces it.
    if (!pending || pending.reason !== FOLLOW_UP || pending.due < due)
      this.#urgent.set(id, { due, reason: FOLLOW_UP });
    this.#wakeAll();
  }

  /** Live events had a gap: re-read that installation's chargers within the budget. */
  afterGap(installationId: string): void {
    for (const [id, slot] of this.#slots)
      if (slot.installationId === installationId) this.readSoon(id, 'after a live-event gap');
  }

  /** Live events are off or down for an installation: poll it as often as the budget allows. */
  setPolling(installationIds: string | readonly string[], polling: boolean): void {
    // Many at once (a start following 300 installations) spread the slots once: one by one was 300 respreads,
    // each writing every polled installation's status line (45,000 writes, the event loop held for 700 ms).
    let changed = false;
    for (const id of typeof installationIds === 'string' ? [installationIds] : installationIds) {
      if (polling === this.#polling.has(id)) continue;
      if (polling) this.#polling.add(id);
      else this.#polling.delete(id);
      changed = true;
    }
    if (changed) this.#respread();
  }

  /** The polling interval the budget allows for the chargers being polled now. */
  pollIntervalMs(): number {
    let polled = 0;
    for (const s of this.#slots.values())
      if (s.installationId && this.#polling.has(s.installationId)) polled++;
    const perSecond = POLLING_SHARE * Math.min(this.#d.requestsPerMinute / 60, BURST_RATE_PER_S);
    return Math.max(15_000, Math.ceil((polled / perSecond) * 1000));
  }

  /** A slot's cadence: its reconciliation spacing, or the polling interval while its installation is polled. */
  /**
   * `pollMs`: the polling interval, when the caller computed it once for many slots (it counts every slot:
   * asked per slot, a resync of 30,000 chargers would be quadratic).
   */
  #cadence(installationId: string | null, spacingMs: number, pollMs?: number): number {
    return installationId && this.#polling.has(installationId)
      ? Math.min(pollMs ?? this.pollIntervalMs(), spacingMs)
      : spacingMs;
  }

  #clampSpacing(ms: number | undefined): number {
    const max = Math.max(this.#d.reconcileMs, this.#d.reconcileMaxMs ?? this.#d.reconcileMs);
    return Math.min(max, Math.max(this.#d.reconcileMs, ms ?? this.#d.reconcileMs));
  }

  /**
   * A read for another reason (a session's follow-up, a gap, the start pass) re-read the whole state: the
   * charger's reconciliation counts from it, so a charger whose sessions are read at their ends needs few
   * reconciliation reads of its own.
   */
  #readAnyway(chargerId: string, readAt: number): void {
    const slot = this.#slots.get(chargerId);
    if (slot) slot.due = Math.max(slot.due, readAt + slot.cadenceMs);
  }

  /**
   * A reconciliation read came back: one that revealed a value the live events had not delivered brings the
   * charger back to the shortest spacing; one that revealed nothing doubles it, up to the longest. The slot's
   * next read moves with it (from this read).
   */
  #learn(chargerId: string, revealed: boolean, readAt: number): void {
    const slot = this.#slots.get(chargerId);
    if (!slot) return;
    const spacing = revealed ? this.#d.reconcileMs : this.#clampSpacing(slot.spacingMs * 2);
    if (spacing === slot.spacingMs) return;
    slot.spacingMs = spacing;
    if (slot.installationId && this.#polling.has(slot.installationId)) return;
    slot.cadenceMs = spacing;
    slot.due = readAt + spacing;
    try {
      this.#d.spacings?.save(chargerId, spacing);
    } catch {
      // Learning is kept in memory; a held write lock loses only its persistence until the next change.
    }
  }

  /** After the set of polled installations changed: new cadences, slots spread evenly again. */
  #respread(): void {
    const now = this.#d.clock.now();
    const interval = this.pollIntervalMs();
    // One pass over the slots, grouped by installation (a filter per installation was quadratic at scale).
    const byInstallation = new Map<string | null, [string, Slot][]>();
    for (const entry of this.#slots) {
      const list = byInstallation.get(entry[1].installationId);
      if (list) list.push(entry);
      else byInstallation.set(entry[1].installationId, [entry]);
    }
    for (const [inst, slots] of byInstallation) {
      if (slots.every(([, s]) => s.cadenceMs === this.#cadence(inst, s.spacingMs, interval))) continue;
      slots.forEach(([id, s], i) => {
        const cadence = this.#cadence(inst, s.spacingMs, interval);
        const slower = cadence > s.cadenceMs;
        s.cadenceMs = cadence;
        s.due = Math.min(s.due, now + Math.round((cadence * (i + 1)) / slots.length));
        // Polling ended (live events connected): a slot polling pulled in goes back to a cadence after the
        // charger's last read (or what the resync found it heard from last), or a few seconds of `connecting`
        // at start would re-read the whole fleet.
        if (slower) s.due = Math.max(s.due, this.#reconciledAt(id, s.heardAt) + cadence);
      });
    }
    const detail = `live events unavailable: polling each charger every ${Math.round(Math.min(interval, this.#d.reconcileMs) / 1000)} s`;
    for (const inst of this.#polling) this.#d.syncStatus.setDetail(inst, detail);
  }

  /** The next read due, removed from its queue (slots move on by their cadence). */
  #next(now: number): { id: string; reason: string } | number {
    let bestId: string | undefined;
    let bestDue = Infinity;
    let bestReason = '';
    for (const [id, u] of this.#urgent) {
      if (u.due < bestDue && !this.#inflight.has(id)) [bestId, bestDue, bestReason] = [id, u.due, u.reason];
    }
    for (const [id, s] of this.#slots) {
      if (s.due >= bestDue || this.#inflight.has(id)) continue;
      // Read recently for another reason (start pass, follow-up, gap): this slot is not needed, and the next
      // comes a cadence after that read (never more: a skipped slot must not add a cadence to the gap).
      if (s.due <= now && now - this.#lastRead(id) < s.cadenceMs / 2) {
        s.due = this.#lastRead(id) + s.cadenceMs;
        continue;
      }
      [bestId, bestDue, bestReason] = [id, s.due, 'reconcile'];
    }
    if (bestId === undefined) return now + 60_000;
    const readable = Math.max(bestDue, this.#d.api.stateReadableAt(bestId));
    if (readable > now) {
      if (readable > bestDue) this.#postpone(bestId, readable);
      return readable;
    }
    this.#urgent.delete(bestId);
    const slot = this.#slots.get(bestId);
    if (slot && slot.due <= now)
      slot.due += slot.cadenceMs * Math.max(1, Math.ceil((now - slot.due) / slot.cadenceMs));
    return { id: bestId, reason: bestReason };
  }

  /**
   * What a charger's next reconciliation counts from: its last full read; with none on record, when it was last
   * heard from (its state kept fresh by live events alone, which a restart must not read all at once). Never the
   * events of a charger that has been read: they are what reconciliation checks.
   */
  #reconciledAt(id: string, heardAt: number): number {
    const read = this.#lastRead(id);
    return read > 0 ? read : heardAt;
  }

  #lastRead(id: string): number {
    return this.#d.api.lastStateRead(id) ?? Number.NEGATIVE_INFINITY;
  }

  #postpone(id: string, at: number): void {
    const u = this.#urgent.get(id);
    if (u && u.due < at) u.due = at;
    const s = this.#slots.get(id);
    if (s && s.due < at && !u) s.due = at;
  }

  /** One worker: its own errors are reported and it goes on after a pause; it never rejects. */
  async #work(): Promise<void> {
    while (!this.#stopped) {
      let next: { id: string; reason: string } | number;
      try {
        next = this.#next(this.#d.clock.now());
      } catch (err) {
        this.#failed(err);
        await this.#d.clock.sleep(WORKER_PAUSE_AFTER_ERROR_MS, this.#abort.signal);
        continue;
      }
      if (typeof next === 'number') {
        await this.#sleepUntil(next);
        continue;
      }
      this.#inflight.add(next.id);
      try {
        await this.#read(next.id, next.reason);
      } finally {
        this.#inflight.delete(next.id);
      }
    }
  }

  #failed(err: unknown): void {
    const sentence = `state reads are failing (${describeError(err)}); each charger is tried again in 5 minutes`;
    this.#problems.fail('state', sentence, err);
  }

  #sleepUntil(at: number): Promise<void> {
    let resolve: () => void = () => {};
    const woken = new Promise<void>((r) => {
      resolve = r;
    });
    this.#waiters.add(resolve);
    const ms = Math.max(1, Math.min(at - this.#d.clock.now(), IDLE_RECHECK_MS));
    return Promise.race([woken, this.#d.clock.sleep(ms, this.#abort.signal)]).finally(() => {
      this.#waiters.delete(resolve);
    });
  }

  async #read(chargerId: string, reason: string): Promise<void> {
    const { api, clock } = this.#d;
    if (reason === FOLLOW_UP) {
      const now = clock.now();
      this.#followUpTat.set(
        chargerId,
        Math.max(this.#followUpTat.get(chargerId) ?? now, now) + FOLLOW_UP_SPACING_MS,
      );
    }
    const startedAt = clock.now();
    try {
      const items = await api.state(chargerId, {
        deadline: clock.now() + READ_DEADLINE_MS,
        signal: this.#abort.signal,
      });
      // What was read is paid for: a held write lock delays the commit, it does not waste the read.
      const observations = toObservations(items, 'poll');
      const reconcile = reason === 'reconcile';
      const result = whenWritable(
        (ms, signal) => clock.sleep(ms, signal),
        () => this.#d.observations.apply(observations, reconcile ? { compareValues: revealing } : {}),
        { signal: this.#abort.signal },
      );
      // Awaited only when it had to wait: the common case takes no extra turn of the event loop.
      const applied = result instanceof Promise ? await result : result;
      this.reads++;
      if (reconcile) this.#learn(chargerId, applied.newValues > 0, clock.now());
      else this.#readAnyway(chargerId, clock.now());
      // A boundary less than 20 s before this read has values that may not have settled: its own follow-up
      // still comes (a session's end is always read), when the bucket refills.
      const boundary = this.#lastBoundary.get(chargerId);
      if (boundary !== undefined) {
        if (startedAt < boundary + MODE_CHANGE_FOLLOW_UP_MS) {
          if (!this.#urgent.has(chargerId)) this.#followUp(chargerId);
        } else this.#lastBoundary.delete(chargerId);
      }
      this.#staleDone(chargerId);
      this.#d.log.debug({ charger: chargerId, reason }, 'state read');
      const inst = this.#slots.get(chargerId)?.installationId;
      if (inst) this.#d.syncStatus.polled(inst, clock.now());
      this.#d.onApplied?.(applied);
      this.#refused.delete(chargerId);
      // A charger still refused keeps the problem open: one warning for it, not one per read in between.
      if (this.#refused.size === 0) this.#problems.ok('state', 'state reads work again');
    } catch (err) {
      if (this.#stopped) return;
      if (err instanceof RateLimitedError) {
        this.readSoon(chargerId, reason, err.retryAt);
        return;
      }
      if (err instanceof HttpStatusError && err.permanent) {
        // Lasting (a removed charger, access withdrawn): no quick retry. Its slot reads it again at its
        // cadence, and the next inventory pass drops it if it is gone; the problem stays open until then.
        if (!this.#refused.has(chargerId))
          this.#d.log.info(
            { charger: chargerId, status: err.status },
            "the charger's state read was refused",
          );
        this.#refused.add(chargerId);
        this.#staleDone(chargerId);
        this.#problems.fail(
          'state',
          `state reads are failing for ${this.#refused.size} charger(s): refused (${err.status}); each is read again at its reconciliation, and the next inventory pass drops chargers that are gone`,
          err,
        );
        return;
      }
      this.readSoon(chargerId, `${reason} (retry)`, clock.now() + RETRY_AFTER_FAILURE_MS);
      // Refused credentials are their own problem (credentials), not a failure of the reads.
      if (!(err instanceof CredentialsError)) this.#failed(err);
    }
  }

  /** The earliest time the charger's follow-up bucket has a read left. */
  #followUpAllowedAt(id: string): number {
    const tat = this.#followUpTat.get(id);
    return tat === undefined ? 0 : tat - (FOLLOW_UP_BURST - 1) * FOLLOW_UP_SPACING_MS;
  }

  #wakeAll(): void {
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }

  /** Reads due now and not yet done (the start pass, a gap's re-reads): other work yields to them. */
  overdue(): number {
    const now = this.#d.clock.now();
    let n = 0;
    for (const u of this.#urgent.values()) if (u.due <= now) n++;
    return n;
  }

  /** Reads waiting (urgent), for status and tests. */
  get pending(): number {
    return this.#urgent.size;
  }
}
