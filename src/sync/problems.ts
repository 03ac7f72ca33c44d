/**
 * What the running daemon finds wrong, one entry per lasting condition (Home Assistant's coordinator habit):
 * a condition is logged once when it starts and once when it ends, never once per attempt; `/healthz` reads
 * it from memory and `status` from `daemon_problems`, rewritten with the heartbeat.
 */
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import type { Clock } from '../time.js';

/** The background work whose failure `status` names (CONTRACT §7 Background work). */
export type ProblemKey =
  | 'credentials'
  | 'inventory'
  | 'state'
  | 'live-events'
  | 'refresh-requests'
  | 'history'
  | 'sessions'
  | 'commands'
  | 'metrics'
  | 'database';

export interface Problem {
  key: ProblemKey;
  /** For people: what is wrong and what the daemon does about it. */
  sentence: string;
  since: number;
}

export class Problems {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #open = new Map<ProblemKey, Problem>();

  constructor(log: Logger, clock: Clock) {
    this.#log = log;
    this.#clock = clock;
  }

  /** The condition holds: logged when it starts (with `err`), its sentence kept up to date after. */
  fail(key: ProblemKey, sentence: string, err?: unknown): void {
    const open = this.#open.get(key);
    if (open) {
      open.sentence = sentence;
      return;
    }
    this.#open.set(key, { key, sentence, since: this.#clock.now() });
    this.#log.warn({ problem: key, ...(err === undefined ? {} : { err: describeError(err) }) }, sentence);
  }

  /** The condition is over: logged once, with how long it lasted. */
  ok(key: ProblemKey, recovered: string): void {
    const open = this.#open.get(key);
    if (!open) return;
    this.#open.delete(key);
    this.#log.info({ problem: key, lastedMs: this.#clock.now() - open.since }, recovered);
  }

  has(key: ProblemKey): boolean {
    return this.#open.has(key);
  }

  list(): Problem[] {
    return [...this.#open.values()];
  }

  /**
   * Runs one pass of a background loop: its failure becomes the problem `key` (the sentence from `failed`)
   * and never escapes as a rejection; its success clears it. Resolves to undefined after a failure.
   */
  async guard<T>(
    key: ProblemKey,
    pass: () => Promise<T> | T,
    failed: (err: unknown) => string,
    recovered: string,
  ): Promise<T | undefined> {
    try {
      const value = await pass();
      this.ok(key, recovered);
      return value;
    } catch (err) {
      this.fail(key, failed(err), err);
      return undefined;
    }
  }
}
