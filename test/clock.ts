import type { Clock } from '../src/time.js';

/** Virtual time: sleeping moves the clock forward at once, so hours of schedule run in milliseconds. */
export class VirtualClock implements Clock {
  #now: number;
  constructor(start = Date.parse('2024-10-10T08:57:00Z')) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return;
    this.#now += Math.max(0, ms);
    await Promise.resolve();
  }
}

/**
 * Virtual time with many sleepers: nothing moves until the test runs the clock, and then each timer fires at
 * its own time, in order, with a little real time after each for the real I/O it starts (loopback HTTP).
 */
export class SteppedClock implements Clock {
  #now: number;
  readonly #timers: { at: number; resolve: () => void }[] = [];
  constructor(start = Date.parse('2024-10-10T08:57:00Z')) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = { at: this.#now + ms, resolve };
      this.#timers.push(timer);
      signal?.addEventListener(
        'abort',
        () => {
          // A timer that already fired is no longer here (splice(-1) would drop another one).
          const i = this.#timers.indexOf(timer);
          if (i >= 0) this.#timers.splice(i, 1);
          resolve();
        },
        { once: true },
      );
    });
  }
  /** Moves time to `until`, firing the timers due on the way in order; `settleMs` of real time after each. */
  async runUntil(until: number, settleMs = 10): Promise<void> {
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers[0];
      if (!next || next.at > until) break;
      this.#timers.shift();
      this.#now = Math.max(this.#now, next.at);
      next.resolve();
      await new Promise((r) => setTimeout(r, settleMs));
    }
    this.#now = Math.max(this.#now, until);
    await new Promise((r) => setTimeout(r, settleMs));
  }
}
