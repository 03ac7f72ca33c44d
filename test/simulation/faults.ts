/**
 * The fault schedule of a simulated run, drawn from its seed: the same seed gives the same faults at the same
 * simulated times, so a failure is replayed by running that seed again.
 */
import { seededRandom } from '../../src/simulator/random.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export type FaultKind =
  | 'inventory-5xx'
  | 'token-revoked'
  | 'password-changed'
  | 'rate-limit-storm'
  | 'broker-blip'
  | 'broker-outage'
  | 'sas-rotated'
  | 'charger-added'
  | 'charger-removed'
  | 'daemon-restart'
  | 'write-lock-held';

/** How a 429's wait is named: each convention the client reads (rate-limits.md §4). */
export type WaitConvention = 'retry-after' | 'retry-after-date' | 'retry-after-ms' | 'x-ms-retry-after-ms';
export const WAIT_CONVENTIONS: WaitConvention[] = [
  'retry-after',
  'retry-after-date',
  'retry-after-ms',
  'x-ms-retry-after-ms',
];

export interface ScheduledFault {
  at: number;
  kind: FaultKind;
  /** How long it lasts (outages, a held lock, a password until restored, a daemon down). */
  forMs: number;
  /** How many answers (5xx, 429), which installation or charger (an index into the fleet's), ... */
  n: number;
  wait: WaitConvention;
  waitMs: number;
}

/** Per simulated day: the expected count of each fault (a Poisson draw each day), and its length. */
const RATES: Record<FaultKind, { perDay: number; forMs: [number, number] }> = {
  'inventory-5xx': { perDay: 3, forMs: [0, 0] },
  'token-revoked': { perDay: 1, forMs: [0, 0] },
  'password-changed': { perDay: 0.1, forMs: [2 * HOUR, 30 * HOUR] },
  'rate-limit-storm': { perDay: 0.7, forMs: [0, 0] },
  'broker-blip': { perDay: 1, forMs: [20_000, 2 * MIN] },
  'broker-outage': { perDay: 0.1, forMs: [1 * HOUR, 5 * HOUR] },
  'sas-rotated': { perDay: 0.3, forMs: [0, 0] },
  'charger-added': { perDay: 0.4, forMs: [0, 0] },
  'charger-removed': { perDay: 0.2, forMs: [0, 0] },
  'daemon-restart': { perDay: 0.4, forMs: [10_000, 30 * MIN] },
  'write-lock-held': { perDay: 0.4, forMs: [5_000, 5 * MIN] },
};

/**
 * The faults of `days` days from `start`. The first hour is left alone (the cold start has its own tests),
 * and so is the last hour (the run ends quiet, and everything pushed must then be stored).
 */
export function faultSchedule(seed: number, start: number, days: number): ScheduledFault[] {
  const r = seededRandom(seed ^ 0x5eed);
  const faults: ScheduledFault[] = [];
  for (let day = 0; day < days; day++) {
    for (const [kind, rate] of Object.entries(RATES) as [FaultKind, (typeof RATES)[FaultKind]][]) {
      for (let i = poisson(r, rate.perDay); i > 0; i--) {
        let at = start + day * DAY + Math.floor(r() * DAY);
        // The hourly pass's 5xx come just before it (the default schedule runs at minute 7 of each hour).
        if (kind === 'inventory-5xx') at = at - (at % HOUR) + 6 * MIN + Math.floor(r() * MIN);
        const [lo, hi] = rate.forMs;
        faults.push({
          at,
          kind,
          forMs: Math.round(lo + r() * (hi - lo)),
          n: 1 + Math.floor(r() * 1000),
          wait: WAIT_CONVENTIONS[Math.floor(r() * WAIT_CONVENTIONS.length)]!,
          waitMs: Math.round((30 + r() * 870) * 1000),
        });
      }
    }
  }
  const end = start + days * DAY;
  return faults
    .filter((f) => f.at >= start + HOUR && f.at + f.forMs < end - HOUR)
    .sort((a, b) => a.at - b.at);
}

function poisson(r: () => number, mean: number): number {
  const limit = Math.exp(-mean);
  let k = 0;
  for (let p = r(); p > limit; p *= r()) k++;
  return k;
}
