/**
 * Charge history (`GET /api/chargehistory`) per followed installation, so that every session Zaptec records is
 * in `charging_sessions` even when its 723 never arrived (CONTRACT §8):
 * - on the first start with sessions on: the last ZAPTEC_SESSIONS_DAYS;
 * - after daemon downtime or a gap in an installation's live events: from its last known session end, with an
 *   hour of overlap;
 * - once a day per installation, each at its own time of day (spread by its id) and never more than a day after
 *   the last, over the last two days (a session committed late, by a charger that was offline, still ends
 *   inside that window).
 * One pass at a time, pages of 100 stored as they come; the calls count against the global budget like any
 * other (there is no reason for a group of their own: at steady state a pass a day per installation is well
 * under 0.01 calls per charger-hour). A pass that fails is reported and tried again in 15 minutes; a refusal
 * (403/404: no access to the installation's history) waits for the next day.
 */
import { HttpStatusError } from '../http/errors.js';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { HistoryItem, SessionStore } from '../store/sessions.js';
import { whenWritable } from '../store/writable.js';
import { type Clock, quietAbortController } from '../time.js';
import type { ZaptecApi } from '../zaptec/api.js';
import type { Problems } from './problems.js';
import type { Progress } from './progress.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Overlap before the last known session end (CONTRACT §8). */
export const GAP_OVERLAP_MS = HOUR;
/** The daily pass reads this far back. */
export const DAILY_WINDOW_MS = 2 * DAY;
/** How often the schedule is looked at; a failed pass is retried this much later too. */
const CHECK_MS = 15 * MINUTE;
/**
 * Passes after a restart or a gap, per installation, at most this often, counted across restarts (a flapping
 * connection, or a daemon restarted in a loop, is one pass).
 */
export const GAP_PASS_SPACING_MS = 15 * MINUTE;

export interface ChargeHistoryDeps {
  api: Pick<ZaptecApi, 'chargeHistory'>;
  sessions: SessionStore;
  /** The installations followed now (lower case, as every id inside the daemon). */
  followed: () => string[];
  clock: Clock;
  log: Logger;
  problems: Problems;
  /** ZAPTEC_SESSIONS_DAYS. */
  days: number;
  /** The previous run's last heartbeat (epoch ms), to tell downtime; undefined on the first start. */
  lastAlive: number | undefined;
  /**
   * True while state reads are overdue (the start pass, a gap's re-reads): charge history is the lowest
   * priority and waits for them, rather than slow the live state down with its pages.
   */
  busy?: () => boolean;
  /** Where the first start's backfill reports how far it is. */
  progress?: Progress;
}

const BACKFILL = 'charge-history-backfill';

/** While state reads are overdue, charge history looks again this often. */
const BUSY_RECHECK_MS = 5_000;

type Reason = 'first start' | 'downtime' | 'live-event gap' | 'daily';

export class ChargeHistorySync {
  readonly #d: ChargeHistoryDeps;
  readonly #abort = quietAbortController();
  /** Installations with a gap (or downtime) to cover, and when their last gap pass ran. */
  readonly #gaps = new Map<string, 'downtime' | 'live-event gap'>();
  readonly #lastGapPass = new Map<string, number>();
  /** Installations whose history was refused: not asked again before this time. */
  readonly #refusedUntil = new Map<string, number>();
  /** Installations whose first pass (the backfill of ZAPTEC_SESSIONS_DAYS) is still to run. */
  readonly #backfill = new Set<string>();
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  /** Passes completed and items read, for tests and benchmarks. */
  passes = 0;
  items = 0;

  constructor(deps: ChargeHistoryDeps) {
    this.#d = deps;
  }

  /**
   * Any start after an earlier run is downtime, however short (CONTRACT §7): Zaptec does not push every 723,
   * so a session that ended meanwhile may be known to charge history alone. Each followed installation's
   * history is read from its last known session end minus an hour, as soon as the spacing allows.
   */
  start(): void {
    if (this.#d.lastAlive !== undefined)
      for (const id of this.#d.followed()) {
        this.#gaps.set(id, 'downtime');
        const last = this.#d.sessions.pass(id)?.gapReadAt;
        if (last !== undefined) this.#lastGapPass.set(id, last);
      }
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#wake?.();
    await this.#loop;
  }

  /** The inventory changed: a newly followed installation gets its first pass now. */
  wake(): void {
    this.#wake?.();
  }

  /** Live events of an installation had a gap: its history is read from its last session end. */
  afterGap(installationId: string): void {
    this.#gaps.set(installationId, 'live-event gap');
    this.#wake?.();
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      await this.#d.problems.guard(
        'sessions',
        // A pass cut short by stopping is not a failure.
        () =>
          this.#due(signal).catch((err) => {
            if (!signal.aborted) throw err;
          }),
        (err) =>
          `reading the charge history failed (${describeError(err)}); tried again in ${CHECK_MS / MINUTE} minutes`,
        'reading the charge history works again',
      );
      if (signal.aborted) break;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        void this.#d.clock.sleep(this.#nextCheckMs(), signal).then(resolve);
      });
      this.#wake = undefined;
    }
  }

  /** Until the next daily pass is due (at most CHECK_MS), or at once when a gap is waiting. */
  #nextCheckMs(): number {
    const now = this.#d.clock.now();
    if (this.#problemsOpen()) return CHECK_MS;
    if ([...this.#gaps.keys()].some((id) => this.#gapAllowedAt(id) <= now)) return 1;
    let next = now + CHECK_MS;
    for (const id of this.#d.followed()) next = Math.min(next, this.#dailyDue(id));
    for (const id of this.#gaps.keys()) next = Math.min(next, this.#gapAllowedAt(id));
    return Math.max(1, next - now);
  }

  /** Every installation whose pass is due, one after the other. */
  async #due(signal: AbortSignal): Promise<void> {
    const waiting = this.#d.followed().filter((id) => !this.#backfill.has(id) && !this.#d.sessions.pass(id));
    for (const id of waiting) this.#backfill.add(id);
    this.#d.progress?.add(BACKFILL, 'charge-history backfill', 'installations', waiting.length);
    for (const id of this.#d.followed()) {
      if (signal.aborted) return;
      const now = this.#d.clock.now();
      if ((this.#refusedUntil.get(id) ?? 0) > now) {
        this.#gaps.delete(id);
        continue;
      }
      const pass = this.#d.sessions.pass(id);
      let reason: Reason | undefined;
      let from = 0;
      if (!pass) {
        reason = 'first start';
        from = now - this.#d.days * DAY;
      } else if (this.#gaps.has(id) && this.#gapAllowedAt(id) <= now) {
        reason = this.#gaps.get(id)!;
        from = (this.#d.sessions.lastEnd(id) ?? pass.readUntil) - GAP_OVERLAP_MS;
      } else if (this.#dailyDue(id, pass) <= now) {
        reason = 'daily';
        from = now - DAILY_WINDOW_MS;
      }
      if (!reason) continue;
      if (reason === 'downtime' || reason === 'live-event gap') {
        this.#gaps.delete(id);
        this.#lastGapPass.set(id, now);
        await whenWritable(
          (ms, s) => this.#d.clock.sleep(ms, s),
          () => this.#d.sessions.gapPassBegins(id, now),
          { signal },
        );
      }
      try {
        await this.#pass(id, from, now, reason, signal);
        if (this.#backfill.delete(id)) this.#d.progress?.done(BACKFILL);
      } catch (err) {
        // Tried again at the next check (a gap no sooner than GAP_PASS_SPACING_MS from now).
        if (reason === 'downtime' || reason === 'live-event gap') this.#gaps.set(id, reason);
        throw err;
      }
    }
  }

  async #pass(
    installationId: string,
    from: number,
    to: number,
    reason: Reason,
    signal: AbortSignal,
  ): Promise<void> {
    const { api, sessions, clock, log } = this.#d;
    while (this.#d.busy?.() && !signal.aborted) await clock.sleep(BUSY_RECHECK_MS, signal);
    if (signal.aborted) return;
    let items: number;
    try {
      items = await api.chargeHistory(
        installationId,
        from,
        to,
        async (page) => {
          for (const item of page) {
            // Each item in its own short transaction: a page of signed sessions stays well under 100 ms.
            await whenWritable(
              (ms, s) => clock.sleep(ms, s),
              () => sessions.history(item as HistoryItem, installationId),
              { signal },
            );
          }
        },
        { signal },
      );
    } catch (err) {
      if (err instanceof HttpStatusError && (err.status === 403 || err.status === 404)) {
        // Lasting: no access to this installation's history. Said once; asked again tomorrow.
        this.#refusedUntil.set(installationId, clock.now() + DAY);
        if (this.#backfill.delete(installationId)) this.#d.progress?.done(BACKFILL);
        log.warn(
          { installationId, status: err.status },
          'Zaptec refuses the charge history of this installation; sessions come from live events only, asked again in a day',
        );
        return;
      }
      throw err;
    }
    await whenWritable(
      (ms, s) => clock.sleep(ms, s),
      () => sessions.passDone(installationId, clock.now(), to),
      { signal },
    );
    this.passes++;
    this.items += items;
    log.info(
      { installationId, reason, from: new Date(from).toISOString(), items },
      'read the charge history',
    );
  }

  /** After a failed pass the next try waits CHECK_MS, whatever is due. */
  #problemsOpen(): boolean {
    return this.#d.problems.has('sessions');
  }

  #gapAllowedAt(id: string): number {
    return (this.#lastGapPass.get(id) ?? Number.NEGATIVE_INFINITY) + GAP_PASS_SPACING_MS;
  }

  /**
   * The installation's daily time: its own moment of the day (from its id), the first one after its last pass,
   * so that the fleet's passes are spread over the day and never more than a day apart (the one after the first
   * start may come sooner).
   */
  #dailyDue(id: string, pass = this.#d.sessions.pass(id)): number {
    if (!pass) return this.#d.clock.now();
    const offset = (Number.parseInt(id.replace(/-/g, '').slice(0, 8), 16) || 0) % DAY;
    const due = Math.floor(pass.lastReadAt / DAY) * DAY + offset;
    return due > pass.lastReadAt ? due : due + DAY;
  }
}
