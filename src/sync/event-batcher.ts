/**
 * Live observations are written in batches: every message waits for the commit of the batch that holds
 * it, and only then is it completed (at-least-once). A batch closes after a few milliseconds or when
 * it is full, so one transaction carries many messages under load and one message when it is quiet.
 */
import type { Logger } from '../log.js';
import type { Observation } from '../observation.js';
import { describeWriteError } from '../store/database.js';
import type { ApplyResult, ObservationStore } from '../store/observations.js';
import type { SyncStatusStore } from '../store/sync-status.js';
import type { Clock } from '../time.js';

/** The longest a message waits for its batch to close. */
const BATCH_WINDOW_MS = 2;
const MAX_BATCH = 500;

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
  /** The batch window is open (a flush is scheduled on the clock); each flush starts a new generation. */
  #scheduled = false;
  #generation = 0;
  #failing = false;
  /** Observations committed, for metrics and the watchdog. */
  applied = 0;

  constructor(deps: EventBatcherDeps) {
    this.#d = deps;
  }

  /** Resolves once the observation is committed; rejects when the batch could not be written. */
  submit(observation: Observation, installationId: string | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ observation, installationId, resolve, reject });
      if (this.#pending.length >= MAX_BATCH) this.flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        const generation = this.#generation;
        void this.#d.clock.sleep(BATCH_WINDOW_MS).then(() => {
          if (generation === this.#generation) this.flush();
        });
      }
    });
  }

  flush(): void {
    this.#scheduled = false;
    this.#generation++;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    let result: ApplyResult;
    try {
      result = this.#d.observations.apply(batch.map((p) => p.observation));
      const now = this.#d.clock.now();
      for (const inst of new Set(batch.map((p) => p.installationId)))
        if (inst) this.#d.syncStatus.eventReceived(inst, now);
    } catch (err) {
      if (!this.#failing) {
        this.#failing = true;
        this.#d.log.error(
          { err: describeWriteError(err) },
          'cannot write live observations; their messages are not completed and will come back',
        );
      }
      for (const p of batch) p.reject(err);
      return;
    }
    if (this.#failing) {
      this.#failing = false;
      this.#d.log.info('live observations are written again');
    }
    this.applied += batch.length;
    if (this.#d.lag) {
      const now = this.#d.clock.now();
      for (const p of batch) this.#d.lag((now - p.observation.observedAt) / 1000);
    }
    if (this.#d.durable) {
      // Completed once synced; a failed sync leaves them uncompleted, and they come back (replays are harmless).
      this.#d.durable().then(
        () => {
          for (const p of batch) p.resolve();
        },
        (err) => {
          this.#d.log.error({ err: describeWriteError(err) }, 'cannot sync the database to disk');
          for (const p of batch) p.reject(err);
        },
      );
    } else for (const p of batch) p.resolve();
    try {
      this.#d.onApplied(result);
    } catch (err) {
      // The reactions (lookups, follow-up reads) must not undo a commit, nor escape this timer.
      this.#d.log.warn({ err: describeWriteError(err) }, 'reacting to live observations failed');
    }
  }
}
