/** Deletes history older than ZAPTEC_HISTORY_DAYS, at start and hourly, a chunk at a time. */
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { ObservationStore } from '../store/observations.js';
import { whenWritable } from '../store/writable.js';
import { type Clock, quietAbortController } from '../time.js';
import type { Problems } from './problems.js';

/** History older than ZAPTEC_HISTORY_DAYS is deleted this often. */
export const PRUNE_INTERVAL_MS = 60 * 60_000;

export class HistoryPruner {
  readonly #observations: ObservationStore;
  readonly #clock: Clock;
  readonly #problems: Problems;
  readonly #log: Logger;
  readonly #abort = quietAbortController();
  #loop: Promise<void> | undefined;

  constructor(observations: ObservationStore, clock: Clock, problems: Problems, log: Logger) {
    this.#observations = observations;
    this.#clock = clock;
    this.#problems = problems;
    this.#log = log;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    while (!signal.aborted) {
      await this.#problems.guard(
        'history',
        () => this.#pass(signal),
        (err) =>
          `pruning charger_state_history failed (${describeError(err)}); tried again in ${PRUNE_INTERVAL_MS / 60_000} minutes`,
        'pruning charger_state_history works again',
      );
      await this.#clock.sleep(PRUNE_INTERVAL_MS, signal);
    }
  }

  /** Chunk after chunk, the event loop free between them; a held lock is waited out. */
  async #pass(signal: AbortSignal): Promise<void> {
    let total = 0;
    for (;;) {
      const n = await whenWritable(
        (ms, s) => this.#clock.sleep(ms, s),
        () => this.#observations.pruneHistory(),
        { signal },
      );
      total += n;
      if (n === 0 || signal.aborted) break;
      // A turn of the event loop between chunks (not a wait: no clock involved).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (total > 0) this.#log.info({ rows: total }, 'pruned charger_state_history');
  }
}
