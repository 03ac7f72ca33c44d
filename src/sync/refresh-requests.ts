/**
 * Answers `refresh_requests` rows (and SIGHUP) within 5 s. New rows are noticed by `PRAGMA
 * data_version`, which moves when another connection commits — no table scan while nothing changes.
 * `deferred` is not final: the row is answered again when its time comes.
 */
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { RefreshRequestRow, RefreshRequestStore } from '../store/refresh-requests.js';
import { whenWritable } from '../store/writable.js';
import { type Clock, every, quietAbortController } from '../time.js';
import type { InventorySync } from './inventory.js';
import type { ChargerLookup, LookupResult } from './lookup.js';
import { Problems } from './problems.js';

/** How often the database's change counter is looked at (the contract promises an answer within 5 s). */
const WATCH_INTERVAL_MS = 2_000;

/** A request is answered within this long, `deferred` while the work it asked for is still running. */
const PASS_ANSWER_MS = 2_500;
/** The retry time a `deferred` answer names while its work runs (its final answer comes when the work ends). */
const PASS_LOOK_AGAIN_MS = 15_000;

export interface RefreshRequestDeps {
  store: RefreshRequestStore;
  lookup: ChargerLookup;
  inventorySync: InventorySync;
  clock: Clock;
  log: Logger;
  problems?: Problems;
}

export class RefreshRequests {
  readonly #d: RefreshRequestDeps;
  readonly #problems: Problems;
  readonly #handling = new Set<number>();
  /** Deferred rows: when to answer them again. */
  readonly #deferred = new Map<number, number>();
  #sighupAt: number | undefined;
  #dataVersion = -1;
  readonly #watch = quietAbortController();
  #watching: Promise<void> | undefined;
  #stopped = false;
  readonly #running = new Set<Promise<void>>();

  constructor(deps: RefreshRequestDeps) {
    this.#d = deps;
    this.#problems = deps.problems ?? new Problems(deps.log, deps.clock);
  }

  start(): void {
    this.#watching = every(this.#d.clock, WATCH_INTERVAL_MS, () => this.tick(), this.#watch.signal);
    this.tick(true);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watch.abort();
    await this.#watching;
    await Promise.allSettled([...this.#running]);
  }

  /** SIGHUP: an inventory refresh, now if the spacing allows, else when it does. */
  sighup(): void {
    this.#sighupAt = this.#d.clock.now();
    this.tick(true);
  }

  tick(force = false): void {
    if (this.#stopped) return;
    const now = this.#d.clock.now();
    try {
      const version = this.#d.store.dataVersion();
      const due = [...this.#deferred.values()].some((t) => t <= now);
      if (force || due || version !== this.#dataVersion) {
        this.#dataVersion = version;
        for (const row of this.#d.store.open()) this.#consider(row, now);
      }
      this.#problems.ok('refresh-requests', 'refresh requests are read again');
    } catch (err) {
      const sentence = `cannot read refresh_requests (${describeError(err)}); tried again every ${WATCH_INTERVAL_MS} ms`;
      this.#problems.fail('refresh-requests', sentence, err);
    }
    if (this.#sighupAt !== undefined && this.#sighupAt <= now) this.#hup();
  }

  #consider(row: RefreshRequestRow, now: number): void {
    if (this.#handling.has(row.id)) return;
    const retryAt = this.#deferred.get(row.id);
    if (retryAt !== undefined && retryAt > now) return;
    this.#handling.add(row.id);
    this.#track(
      this.#settle(row)
        // Unanswered (the database refused for minutes): the row is still open and is considered again.
        .catch((err) =>
          this.#problems.fail(
            'refresh-requests',
            `cannot answer refresh requests (${describeError(err)})`,
            err,
          ),
        )
        .finally(() => this.#handling.delete(row.id)),
    );
  }

  /**
   * Handles one row and answers it. Work that outlasts PASS_ANSWER_MS (a lookup or a request waiting for an
   * inventory pass, whose pages wait for the lists' budget) is answered `deferred` first, so that every row
   * has an answer within 5 s, and answered again when the work is done.
   */
  async #settle(row: RefreshRequestRow): Promise<void> {
    const work = this.#handle(row).catch(
      (err): LookupResult => ({ outcome: 'failed', detail: describeError(err) }),
    );
    const early = await Promise.race([work, this.#d.clock.sleep(PASS_ANSWER_MS).then(() => undefined)]);
    if (!early) {
      await this.#answer(row, {
        outcome: 'deferred',
        detail: row.charger?.trim()
          ? 'being looked up (an inventory pass is under way); answered again once it completes'
          : 'an inventory pass is under way; answered again once it completes',
        retryAt: this.#d.clock.now() + PASS_LOOK_AGAIN_MS,
      });
    }
    await this.#answer(row, early ?? (await work));
  }

  #track(p: Promise<void>): void {
    this.#running.add(p);
    void p.finally(() => this.#running.delete(p));
  }

  async #handle(row: RefreshRequestRow): Promise<LookupResult> {
    if (row.charger?.trim()) return this.#d.lookup.lookup(row.charger, `refresh request ${row.id}`);
    return this.#inventory(Date.parse(row.requested_at));
  }

  /** A whole-inventory request: satisfied by any pass after it was made; else one now, or deferred. */
  async #inventory(requestedAt: number): Promise<LookupResult> {
    const sync = this.#d.inventorySync;
    const last = sync.lastRefresh();
    if (last !== undefined && last >= requestedAt) {
      return { outcome: 'refreshed', detail: `inventory refreshed at ${new Date(last).toISOString()}` };
    }
    if (await sync.refresh('refresh request')) {
      return {
        outcome: 'refreshed',
        detail: `inventory refreshed at ${new Date(sync.lastRefresh() ?? 0).toISOString()}`,
      };
    }
    const at = sync.allowedAt();
    return {
      outcome: 'deferred',
      detail: `inventory refreshes are at least 60 minutes apart; this one will run at ${new Date(at).toISOString()}`,
      retryAt: at,
    };
  }

  async #answer(row: RefreshRequestRow, r: LookupResult): Promise<void> {
    if (this.#stopped && r.outcome === 'failed') return; // abandoned by the stop, answered after the restart
    if (r.outcome === 'deferred') this.#deferred.set(row.id, r.retryAt ?? this.#d.clock.now() + 60_000);
    else this.#deferred.delete(row.id);
    const { clock } = this.#d;
    await whenWritable(
      (ms) => clock.sleep(ms),
      () => this.#d.store.answer(row.id, r.outcome, r.detail, clock.now()),
      { maxWaitMs: 60_000 },
    );
  }

  #hup(): void {
    this.#sighupAt = undefined;
    const p = this.#inventory(this.#d.clock.now() - 1).then(
      (r) => {
        if (r.outcome === 'deferred') {
          this.#sighupAt = r.retryAt;
          this.#d.log.info(
            { at: new Date(r.retryAt ?? 0).toISOString() },
            'SIGHUP: inventory refresh deferred',
          );
        }
      },
      (err) => this.#d.log.warn({ err: describeError(err) }, 'SIGHUP: inventory refresh failed'),
    );
    this.#track(p);
  }
}
