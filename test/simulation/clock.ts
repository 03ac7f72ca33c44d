/**
 * The simulation's clock: virtual time for the whole daemon and the simulator in one process. Timers wait in
 * a heap and fire in order, each at its own time; after each, the clock lets real time pass only while real
 * I/O it started is under way (loopback HTTP, AMQP deliveries, an fsync), as `busy()` and `progress()` tell.
 * A wait that makes no progress for `stallMs` of real time (a message held on purpose while a consumer holds
 * the write lock, a connection the SDK retries on its own real-time schedule) does not hold time up.
 */
import { setImmediate as turn } from 'node:timers/promises';
import type { Clock } from '../../src/time.js';

interface Timer {
  at: number;
  seq: number;
  resolve: () => void;
  done: boolean;
}

export interface SimClockOptions {
  start: number;
  /** Real I/O under way that the simulated world is waiting for: what it is, or undefined when none. */
  busy: () => string | undefined;
  /** Any number that moves while that I/O makes progress. */
  progress: () => number;
  /**
   * How long a wait may go without progress before it is given up, for what is under way: short where a
   * message may be held on purpose, longer for I/O that always completes (a request, an fsync) on a busy
   * machine, or a request admitted at one instant could still be on its way when the next timer fires.
   */
  stallMs?: number | ((busy: string) => number);
  /** Told of each wait given up (debugging a run: what was under way). */
  onStall?: (busy: string) => void;
}

export class SimClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #heap: Timer[] = [];
  readonly #o: Required<SimClockOptions>;
  /** Timers fired (reported by the harness). */
  fired = 0;
  /** Waits given up for want of progress, by what was under way. */
  readonly stalls = new Map<string, number>();
  #interrupted = false;

  constructor(options: SimClockOptions) {
    this.#o = { stallMs: 25, onStall: () => {}, ...options };
    this.#now = options.start;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, resolve, done: false };
      const onAbort = () => {
        timer.done = true; // left in the heap, skipped when it comes up
        resolve();
      };
      timer.resolve = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#push(timer);
    });
  }

  /**
   * Moves time to `until`, firing every timer due on the way at its own time and settling after each. Returns
   * sooner, at the time reached, after `interrupt()`: the driver has something to do first.
   */
  async runUntil(until: number): Promise<void> {
    await this.settle();
    for (;;) {
      if (this.#interrupted) {
        this.#interrupted = false;
        return;
      }
      const next = this.#heap[0];
      if (!next || next.at > until) break;
      this.#pop();
      if (next.done) continue;
      next.done = true;
      this.#now = Math.max(this.#now, next.at);
      this.fired++;
      next.resolve();
      await this.settle();
    }
    this.#now = Math.max(this.#now, until);
    await this.settle();
  }

  /** Makes the `runUntil` under way return after the current timer (a timer's own code cannot drive time). */
  interrupt(): void {
    this.#interrupted = true;
  }

  /** Runs what the last timer set going: microtasks at once, real I/O for as long as it progresses. */
  async settle(): Promise<void> {
    let seen = this.#o.progress();
    let since = 0;
    for (;;) {
      for (let i = 0; i < 8; i++) await Promise.resolve();
      let busy = this.#o.busy();
      if (busy === undefined) {
        // A turn of the event loop drains the microtask queue, as real time would before the next timer: a
        // response's processing (a 429's block) is done before a timer due at the same instant fires.
        await turn();
        busy = this.#o.busy();
        if (busy === undefined) return;
      }
      if (since === 0) since = performance.now();
      await turn();
      const p = this.#o.progress();
      const t = performance.now();
      if (p !== seen) {
        seen = p;
        since = t;
      } else if (
        t - since >
        (typeof this.#o.stallMs === 'number' ? this.#o.stallMs : this.#o.stallMs(busy))
      ) {
        this.stalls.set(busy, (this.stalls.get(busy) ?? 0) + 1);
        this.#o.onStall(busy);
        return;
      }
    }
  }

  #push(t: Timer): void {
    const h = this.#heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * One daemon's view of the simulated clock, which the simulation can freeze as SIGSTOP freezes a process: the
 * daemon's timers that come due meanwhile fire only at the thaw, all at once, late, as a resumed process's do.
 */
export class FreezableClock implements Clock {
  readonly #clock: Clock;
  #held: (() => void)[] | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  now(): number {
    return this.#clock.now();
  }

  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    await this.#clock.sleep(ms, signal);
    const held = this.#held;
    if (held) await new Promise<void>((resolve) => held.push(resolve));
  }

  /** The daemon's timers that came due while it was frozen. */
  get waiting(): number {
    return this.#held?.length ?? 0;
  }

  freeze(): void {
    this.#held ??= [];
  }

  thaw(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const resolve of held) resolve();
  }
}
