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
