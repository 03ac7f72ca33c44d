/**
 * What the simulated Zaptec enforces, exactly as documented: per user a 10/s burst-15 bucket over all
 * calls, 30 per minute and 150 per 30 minutes on the two lists, 1 per second on the token endpoint.
 * `scale` shortens every window (tests run 30 minutes in seconds). Violations answer 429 + Retry-After: 1.
 */
export interface SimLimits {
  scale: number;
  bucket: { ratePerSecond: number; burst: number };
  lists: { limit: number; seconds: number }[];
  token: { limit: number; seconds: number };
}

export function zaptecLimits(scale = 1): SimLimits {
  return {
    scale,
    bucket: { ratePerSecond: 10, burst: 15 },
    lists: [
      { limit: 30, seconds: 60 },
      { limit: 150, seconds: 1800 },
    ],
    token: { limit: 1, seconds: 1 },
  };
}

class SlidingLog {
  #times: number[] = [];
  readonly limit: number;
  readonly windowMs: number;
  constructor(limit: number, windowMs: number) {
    this.limit = limit;
    this.windowMs = windowMs;
  }
  fits(now: number): boolean {
    while (this.#times.length > 0 && this.#times[0]! <= now - this.windowMs) this.#times.shift();
    return this.#times.length < this.limit;
  }
  record(now: number): void {
    this.#times.push(now);
  }
  /** Counts the request when it fits; false (and not counted) when the window is full. */
  take(now: number): boolean {
    if (!this.fits(now)) return false;
    this.record(now);
    return true;
  }
}

class Bucket {
  #tat = 0;
  readonly #t: number;
  readonly #tau: number;
  constructor(ratePerSecond: number, burst: number) {
    this.#t = 1000 / ratePerSecond;
    this.#tau = (burst - 1) * this.#t;
  }
  take(now: number): boolean {
    const tat = Math.max(this.#tat, now);
    if (tat - this.#tau > now) return false;
    this.#tat = tat + this.#t;
    return true;
  }
}

/** One user's windows on the simulated server. */
export class UserLimits {
  readonly #bucket: Bucket;
  readonly #lists: SlidingLog[];
  constructor(limits: SimLimits) {
    this.#bucket = new Bucket(limits.bucket.ratePerSecond / limits.scale, limits.bucket.burst);
    this.#lists = limits.lists.map((w) => new SlidingLog(w.limit, w.seconds * 1000 * limits.scale));
  }
  /** Which limit a request breaks, or undefined when it may be served (and is counted). */
  admit(isList: boolean, now: number): string | undefined {
    if (isList) {
      const full = this.#lists.find((w) => !w.fits(now));
      if (full) return `lists ${full.limit}/${full.windowMs / 1000}s`;
    }
    if (!this.#bucket.take(now)) return 'burst bucket';
    if (isList) for (const w of this.#lists) w.record(now);
    return undefined;
  }
}

export class TokenLimit {
  readonly #log: SlidingLog;
  constructor(limits: SimLimits) {
    this.#log = new SlidingLog(limits.token.limit, limits.token.seconds * 1000 * limits.scale);
  }
  admit(now: number): boolean {
    return this.#log.take(now);
  }
}
