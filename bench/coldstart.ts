/**
 * Cold start and API frugality (issue 8 §3, §4), with the real `run` process against the simulator.
 * - Cold start: time from start to every charger's state in SQLite, vs. the budget-limited minimum
 *   (calls ÷ the allowed rate). Target: within 10 %.
 * - Frugality, events on: API calls per charger-hour in steady state with realistic sessions (about three
 *   a day per charger). Target ≤ 1.5, with every pushed value fresh within a second.
 * - Frugality, events off: the poll interval reached vs. the theoretical one.
 * `--chargers N` (default 1000); `--window S` seconds of steady state (default 120); `--off-chargers N`
 * (default 200) for the events-off run; `--off-only` runs only that.
 */
import { parseArgs } from 'node:util';
import { groupsFor } from '../src/http/profile.js';
import { ZAPTEC_LIST_LIMITS, zaptecProfile } from '../src/http/profiles.js';
import { allConnected, type Bench, sleep, startBench } from './harness.js';
import { record } from './machine.js';

const { values } = parseArgs({
  options: {
    chargers: { type: 'string', default: '1000' },
    window: { type: 'string', default: '120' },
    'off-chargers': { type: 'string', default: '200' },
    'off-only': { type: 'boolean', default: false },
  },
});
const PER_INSTALLATION = 100;
/** The fleet's actual size: a whole number of equal installations of at most 100, never fewer than asked. */
const N = fleetSize(Number(values.chargers));
const OFF_N = fleetSize(Number(values['off-chargers']));
const WINDOW_S = Number(values.window);
/** The profile the daemon runs with by default (ZAPTEC_REQUESTS_PER_MINUTE 600). */
const PROFILE = zaptecProfile(600);
/** The profile's burst bucket: the fastest steady rate the daemon allows itself. */
const ALLOWED_PER_S = PROFILE.groups
  .flatMap((g) => g.windows)
  .flatMap((w) => (w.kind === 'bucket' ? [w.ratePerSecond] : []))[0]!;
/** The lists group's one-minute window in the Zaptec profile. */
const LISTS_PER_MIN = ZAPTEC_LIST_LIMITS.perMinute;

function fleet(n = N) {
  const installations = Math.ceil(n / PER_INSTALLATION);
  return { installations, chargersPerInstallation: Math.ceil(n / installations) };
}

function fleetSize(n: number): number {
  const f = fleet(n);
  return f.installations * f.chargersPerInstallation;
}

/**
 * From the daemon's spawn to every charger's state in SQLite. The budget-limited minimum is the larger of
 * all calls at the burst bucket's rate and the list pages at the lists group's 25 a minute.
 */
async function coldStart(b: Bench, n = N): Promise<{ line: string; readyAt: number }> {
  await b.until(
    'every charger with state',
    () => b.count('SELECT count(DISTINCT charger_id) AS n FROM charger_state') >= n,
    3_600_000,
  );
  const seconds = (Date.now() - b.startedAt) / 1000;
  const calls = b.sim.rest.requests.length;
  const lists = b.sim.rest.requests.filter((r) =>
    groupsFor(PROFILE, r.method, r.path).some((g) => g.name === 'lists'),
  ).length;
  const minimum = Math.max(calls / ALLOWED_PER_S, Math.floor((lists - 1) / LISTS_PER_MIN) * 60);
  const over = seconds / minimum - 1;
  return {
    readyAt: Date.now(),
    line: `cold start, ${n} chargers: ${seconds.toFixed(1)} s from spawn for ${calls} calls (${lists} list pages); budget-limited minimum ${minimum.toFixed(1)} s (${ALLOWED_PER_S}/s, lists ${LISTS_PER_MIN}/min) — ${(over * 100).toFixed(1)} % over, target ≤ 10 %: ${over <= 0.1 ? 'met' : 'MISSED'}`,
  };
}

/** Events on: calls per charger-hour in a steady window after the start pass. */
async function eventsOn(): Promise<string[]> {
  const b = await startBench(fleet());
  try {
    const cold = await coldStart(b);
    await b.until('live events', () => allConnected(b), 600_000);
    // Realistic lives: ~20 observations/s over the fleet, a car about three times a day per charger.
    b.sim.live({ eventsPerSecond: 20, arrivalChance: 3 / ((20 * 86_400) / N), churn: 0 });
    const from = Date.now();
    const before = b.sim.rest.requests.length;
    await sleep(WINDOW_S * 1000);
    const requests = b.sim.rest.requests.slice(before);
    const hours = (Date.now() - from) / 3_600_000;
    const reads = requests.filter((r) => r.path.endsWith('/state')).length;
    const other = requests.length - reads;
    const measured = requests.length / N / hours;
    // Reconciliation is one read per charger per ZAPTEC_RECONCILE_MINUTES (60) by construction, and
    // its first round is spread over the hour after the start pass: add it as scheduled.
    const reconcile = 1;
    const followUps = reads / N / hours;
    const total = followUps + other / N / hours + reconcile;
    return [
      cold.line,
      `frugality, events on, ${N} chargers, ${WINDOW_S} s steady window: ${requests.length} calls (${reads} state reads) = ${measured.toFixed(2)} per charger-hour measured, ${total.toFixed(2)} with the hourly reconciliation read added — target ≤ 1.5: ${total <= 1.5 ? 'met' : 'MISSED'}; anchors (zaptec-api.md §7): Home Assistant ~7 idle / ~61 charging, evcc ~120, Homey 240–360`,
    ];
  } finally {
    await b.stop();
  }
}

/**
 * Events off: the poll interval each charger actually gets vs. what the budget allows. Measured after one
 * full interval has passed since the start pass (the first round skips chargers the start pass just
 * read), over two more intervals; a smaller fleet keeps that short (the interval scales with the fleet).
 */
async function eventsOff(): Promise<string> {
  const b = await startBench(fleet(OFF_N), { ZAPTEC_EVENTS: 'off' });
  try {
    await coldStart(b, OFF_N);
    const theoretical = Math.max(15, OFF_N / (0.5 * ALLOWED_PER_S));
    await sleep(theoretical * 1000);
    const from = Date.now();
    const before = b.sim.rest.requests.length;
    await sleep(2 * theoretical * 1000);
    const reads = b.sim.rest.requests.slice(before).filter((r) => r.path.endsWith('/state'));
    const seconds = (Date.now() - from) / 1000;
    const reached = seconds / (reads.length / OFF_N);
    return `events off, ${OFF_N} chargers: each charger polled every ${reached.toFixed(0)} s on average over ${seconds.toFixed(0)} s (theoretical with half the budget kept free: ${theoretical.toFixed(0)} s, i.e. ${(1000 / (0.5 * ALLOWED_PER_S)).toFixed(0)} s for 1,000 chargers; ${(reads.length / seconds).toFixed(2)} reads/s)`;
  } finally {
    await b.stop();
  }
}

const lines = values['off-only'] ? [await eventsOff()] : [...(await eventsOn()), await eventsOff()];
for (const l of lines) console.log(l);
record(
  'cold start and frugality',
  `npm run bench:coldstart -- --chargers ${N} --window ${WINDOW_S} --off-chargers ${OFF_N}${values['off-only'] ? ' --off-only' : ''}`,
  lines.join('; '),
);
