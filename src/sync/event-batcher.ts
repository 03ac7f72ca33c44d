/**
 * Live observations are written in batches: every message waits for the commit of the batch that holds
 * it, and only then is it completed (at-least-once). A batch closes after a few milliseconds or when
 * it is full, so one transaction carries many messages under load and one message when it is quiet.
 *
 * While the database cannot be written (a consumer holds the write lock, the disk is full), the batcher
 * keeps what it was given and tries it again itself, all at once, 250 ms after the failure and then at
 * most 5 s apart: one short attempt for all the waiting messages instead of one per message, and every
 * waiting message committed within 5 s of the database being writable again. Their SDK locks are renewed
 * meanwhile; nothing is abandoned towards the broker's max delivery count.
 */
import type { Logger } from '../log.js';
import type { Observation } from '../observation.js';
import { describeWriteError } from '../store/database.js';
import type { ApplyResult, ObservationStore } from '../store/observations.js';
import type { SyncStatusStore } from '../store/sync-status.js';
import type { Clock } from '../time.js';

/** The longest a message waits for its batch to close. */
const BATCH_WINDOW_MS = 2;
/** The most observations in one transaction (a held backlog is written in several, a tick apart). */
const MAX_BATCH = 500;
/** After a failed write, the next attempt comes this long after it, doubling up to the cap. */
const RETRY = { firstMs: 250, capMs: 5_000 };

/** The batcher was stopped before the observation was committed: its message is left to come back. */
export class BatcherStoppedError extends Error {
  constructor() {
    super('stopped before the observation was committed');
    this.name = 'BatcherStoppedError';
  }
}

interface Pending {
  observation: Observation;
  /** The installation it is for (its last_event_at); none for a user group's charger not in the inventory. */
  installationId: string | undefined;
  resolve(): void;
  reject(err: unknown): void;
}

export interface EventBatcherDeps {
  observations: ObservationStore;
  syncStatus: SyncStatusStore;
  clock: Clock;
  log: Logger;
  onApplied(result: ApplyResult): void;
  /** Resolves once what was committed is on disk (the group commit): only then are messages completed. */
  durable?: () => Promise<void>;
  /** Seconds from Zaptec's observation time to the commit, per live observation (metrics). */
  lag?: (seconds: number) => void;
}

export class EventBatcher {
  readonly #d: EventBatcherDeps;
  #pending: Pending[] = [];
  /** A flush is scheduled on the clock (the batch window, the next chunk, or the retry after a failure). */
  #scheduled = false;
  /** Each flush starts a new generation: a scheduled flush that an earlier one overtook does nothing. */
  #generation = 0;
  /** Consecutive failed writes; while there are any, only the scheduled retry writes. */
  #failures = 0;
  readonly #failing = { write: false, sync: false };
  #stopped = false;
  /** Observations committed, for metrics and the watchdog. */
  applied = 0;

  constructor(deps: EventBatcherDeps) {
    this.#d = deps;
  }

  /**
   * Resolves once the observation is committed and on disk, however long the database refuses it; rejects
   * with BatcherStoppedError only when the batcher is stopped first.
   */
  submit(observation: Observation, installationId: string | undefined): Promise<void> {
    if (this.#stopped) return Promise.reject(new BatcherStoppedError());
    return new Promise((resolve, reject) => {
      this.#pending.push({ observation, installationId, resolve, reject });
      // While writes fail, the scheduled retry takes this one too (#schedule keeps a scheduled flush).
      if (this.#pending.length >= MAX_BATCH && this.#failures === 0) this.flush();
      else this.#schedule(BATCH_WINDOW_MS);
    });
  }

  /** Messages waiting for their commit (in a batch window, or held while the database refuses writes). */
  get waiting(): number {
    return this.#pending.length;
  }

  /** Writes up to one batch of what is waiting now; what is left is scheduled at once (or at the retry). */
  flush(): void {
    this.#scheduled = false;
    this.#generation++;
    if (this.#pending.length === 0) return;
    const batch = this.#pending.length <= MAX_BATCH ? this.#pending : this.#pending.slice(0, MAX_BATCH);
    this.#pending = batch === this.#pending ? [] : this.#pending.slice(MAX_BATCH);
    if (!this.#write(batch)) {
      this.#failed(batch);
      return;
    }
    if (this.#pending.length > 0) this.#schedule(0);
  }

  /** A last flush, then every observation still waiting is given up (its message comes back later). */
  stop(): void {
    this.flush();
    this.#stopped = true;
    this.#generation++;
    const left = this.#pending;
    this.#pending = [];
    for (const p of left) p.reject(new BatcherStoppedError());
  }

  #schedule(ms: number): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    const generation = this.#generation;
    void this.#d.clock.sleep(ms).then(() => {
      if (generation === this.#generation) this.flush();
    });
  }

  /** Commits one batch; false when the database refused it (the batch is then the caller's to keep). */
  #write(batch: Pending[]): boolean {
    let result: ApplyResult;
    try {
      result = this.#d.observations.apply(batch.map((p) => p.observation));
      const now = this.#d.clock.now();
      for (const inst of new Set(batch.map((p) => p.installationId)))
        if (inst) this.#d.syncStatus.eventReceived(inst, now);
    } catch (err) {
      this.#report('write', err);
      return false;
    }
    this.#report('write', undefined);
    this.applied += batch.length;
    if (this.#d.lag) {
      const now = this.#d.clock.now();
      for (const p of batch) this.#d.lag((now - p.observation.observedAt) / 1000);
    }
    if (this.#d.durable) {
      // Completed once synced; a failed sync keeps them, and they are written and synced again (replays are
      // harmless).
      this.#d.durable().then(
        () => this.#done(batch),
        (err) => {
          this.#report('sync', err);
          this.#failed(batch);
        },
      );
    } else this.#done(batch);
    try {
      this.#d.onApplied(result);
    } catch (err) {
      // The reactions (lookups, follow-up reads) must not undo a commit, nor escape this timer.
      this.#d.log.warn({ err: describeWriteError(err) }, 'reacting to live observations failed');
    }
    return true;
  }

  #done(batch: Pending[]): void {
    this.#report('sync', undefined);
    this.#failures = 0;
    for (const p of batch) p.resolve();
  }

  /** Says once when writing (or syncing) starts failing, and once when it works again. */
  #report(what: 'write' | 'sync', err: unknown): void {
    const failing = err !== undefined;
    if (failing === this.#failing[what]) return;
    this.#failing[what] = failing;
    if (!failing)
      this.#d.log.info(`live observations are ${what === 'write' ? 'written' : 'made durable'} again`);
    else if (what === 'write')
      this.#d.log.error(
        { err: describeWriteError(err) },
        'cannot write live observations; they are kept and written when the database takes them',
      );
    else
      this.#d.log.error(
        { err: describeWriteError(err) },
        'cannot make live observations durable (synced to disk, or carried to PostgreSQL); their messages stay uncompleted and are tried again',
      );
  }

  /** The batch could not be made durable: it goes back first in line, and all are tried again later. */
  #failed(batch: Pending[]): void {
    if (this.#stopped) {
      for (const p of batch) p.reject(new BatcherStoppedError());
      return;
    }
    this.#pending = batch.concat(this.#pending);
    this.#failures++;
    this.#scheduled = false;
    this.#generation++;
    this.#schedule(Math.min(RETRY.capMs, RETRY.firstMs * 2 ** (this.#failures - 1)));
  }
}
