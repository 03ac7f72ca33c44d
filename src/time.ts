import { setMaxListeners } from 'node:events';

/** A source of wall-clock time, injected wherever behaviour depends on it so tests never sleep. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms` of this clock's time, or at once when the signal aborts. Never rejects. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = { now: () => Date.now(), sleep: (ms, signal) => delay(ms, signal) };

/**
 * The clock's setInterval: `fn` every `ms` of the clock's time until the signal aborts. `fn` must not throw
 * (each caller catches and reports its own errors); the returned promise settles once the loop has ended.
 */
export async function every(clock: Clock, ms: number, fn: () => void, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    await clock.sleep(ms, signal);
    if (signal.aborted) return;
    fn();
  }
}

/** ISO-8601 UTC with milliseconds and `Z`: the only timestamp form the database holds. */
export function isoMs(ms: number): string {
  return new Date(ms).toISOString();
}

const ZAPTEC_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Parses a Zaptec timestamp ("2022-12-05T13:10:10.837", "2023-08-03T00:00:00.0617Z",
 * "2025-07-23T22:42:37.530253Z") to epoch milliseconds. Times without an offset are UTC (CONTRACT §3);
 * fractions beyond milliseconds are truncated, never rounded, so a replay maps to the same instant.
 * Returns undefined for anything else.
 */
export function parseZaptecTime(text: string): number | undefined {
  const m = ZAPTEC_TIME.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const ms = Number((frac ?? '').slice(0, 3).padEnd(3, '0'));
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  if (Number.isNaN(t)) return undefined;
  const check = new Date(t);
  if (
    check.getUTCMonth() !== Number(mo) - 1 ||
    check.getUTCDate() !== Number(d) ||
    check.getUTCHours() !== Number(h)
  ) {
    return undefined;
  }
  if (zone && zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offset = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || '0');
    t -= sign * offset * 60_000;
  }
  if (t < Date.UTC(1970, 0, 1) || t > Date.UTC(9999, 11, 31)) return undefined;
  return t;
}

/** Resolves after `ms`, or at once when the signal aborts. Never rejects. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** An AbortController whose signal may have many listeners at once (every pending wait adds one). */
export function quietAbortController(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}
