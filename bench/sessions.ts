/**
 * What charging sessions cost (issue 15): charge history at 1,000 chargers (10 installations, half of them
 * Pro MID chargers that sign their sessions), in-process on a stepped clock against the simulator's REST API
 * through the real client:
 * - the first start's backfill of ZAPTEC_SESSIONS_DAYS (30): calls, sessions stored and verified, the CPU it
 *   took, and the least time the budget allows for those calls (9/s);
 * - steady state: `--days D` (default 7) simulated days of realistic sessions (2 per charger-day, none pushed),
 *   the calls per charger-hour the daily passes add (target < 0.01), and whether every session is stored.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/log.js';
import { Fleet } from '../src/simulator/fleet.js';
import { RestSimulator } from '../src/simulator/rest.js';
import { openDatabase } from '../src/store/database.js';
import { ObservationStore } from '../src/store/observations.js';
import { SessionStore } from '../src/store/sessions.js';
import { ChargeHistorySync } from '../src/sync/charge-history.js';
import { Problems } from '../src/sync/problems.js';
import { SteppedClock } from '../test/clock.js';
import { simulatorClient } from '../test/sim-client.js';
import { record } from './machine.js';

const { values } = parseArgs({
  options: {
    chargers: { type: 'string', default: '1000' },
    days: { type: 'string', default: '7' },
    'backfill-days': { type: 'string', default: '30' },
  },
});
const N = Number(values.chargers);
const DAYS = Number(values.days);
const BACKFILL_DAYS = Number(values['backfill-days']);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const PER_DAY = 2;

const quiet = createLogger({ level: 'silent' });
const clock = new SteppedClock(Date.parse('2026-11-01T00:00:00Z'));
const installations = Math.max(1, Math.round(N / 100));
const fleet = new Fleet({
  seed: 15,
  installations,
  chargersPerInstallation: Math.ceil(N / installations),
  deviceTypes: [4, 1],
  now: clock.now(),
});
const chargers = [...fleet.chargers.values()];
let n = 0;
/** Every charger's sessions of [from, to): PER_DAY a day at random times, an hour or two each. */
function sessionsBetween(from: number, to: number): number {
  let made = 0;
  for (const c of chargers) {
    const count = Math.round(((to - from) / DAY) * PER_DAY);
    for (let i = 0; i < count; i++) {
      const end = from + fleet.random() * (to - from);
      fleet.completeSession({
        chargerId: c.id,
        sessionId: `5e551011-0000-4000-8000-${String(++n).padStart(12, '0')}`,
        startedAt: end - HOUR - fleet.random() * HOUR,
        endedAt: end,
        meterStartKwh: 1000 + n / 100,
        energyKwh: 5 + fleet.random() * 20,
      });
      made++;
    }
  }
  fleet.sessions.sort((a, b) => a.endedAt - b.endedAt);
  return made;
}

// Inside the window with an hour to spare: the pass's `From` is taken a moment later than this.
const made = sessionsBetween(clock.now() - BACKFILL_DAYS * DAY + HOUR, clock.now());
const sim = new RestSimulator({ fleet, now: () => clock.now() });
await sim.start();
const dir = mkdtempSync(join(tmpdir(), 'zaptec-bench-'));
const db = openDatabase(join(dir, 'z.db'), { create: true, daemon: true });
const client = simulatorClient(sim, { db, clock, version: 'bench' });
const sessions = new SessionStore(db, { personalData: false, log: quiet, now: () => clock.now() });
// The Pro MID chargers' keys (981) are known, as after the start pass's state reads: signatures are verified.
new ObservationStore(db, { historyDays: 0, now: () => clock.now(), sessions }).apply(
  chargers.flatMap((c) => {
    const key = c.state.get(981);
    return key
      ? [{ chargerId: c.id, stateId: 981, value: key.value, observedAt: key.at, source: 'poll' as const }]
      : [];
  }),
);
const sync = new ChargeHistorySync({
  api: client.api,
  sessions,
  followed: () => [...fleet.installations.keys()],
  clock,
  log: quiet,
  problems: new Problems(quiet, clock),
  days: BACKFILL_DAYS,
  lastAlive: undefined,
});
const calls = () => sim.requests.filter((r) => r.path === '/api/chargehistory').length;
const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
async function pump(ms: number, stepMs: number): Promise<void> {
  const end = clock.now() + ms;
  while (clock.now() < end) {
    await clock.runUntil(Math.min(end, clock.now() + stepMs), 1);
    await new Promise((r) => setTimeout(r, 2));
  }
}

// The backfill: pumped in small steps until every session is stored.
const cpu0 = process.cpuUsage();
const virtual0 = clock.now();
sync.start();
while (count('SELECT count(*) AS n FROM charging_sessions') < made && clock.now() - virtual0 < 2 * HOUR)
  await pump(10_000, 200);
const cpu = process.cpuUsage(cpu0);
const backfillCalls = calls();
const stored = count('SELECT count(*) AS n FROM charging_sessions');
const verified = count('SELECT count(*) AS n FROM charging_sessions WHERE signature_valid = 1');
const backfill = `first start, ${BACKFILL_DAYS} days of ${N} chargers (${made} sessions, ${verified} signed and verified): ${backfillCalls} calls (${(backfillCalls / N).toFixed(2)} per charger), ${stored} stored, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU in this process (client, simulator, OCMF parsing and P-384 verification together), ${((clock.now() - virtual0) / 1000).toFixed(0)} s of budgeted time (least possible at 9/s: ${(backfillCalls / 9).toFixed(0)} s)`;
console.log(backfill);

// Steady state: sessions keep ending (none pushed); the daily passes find them.
const steadyFrom = clock.now();
const callsBefore = calls();
let expected = made;
for (let d = 0; d < DAYS; d++) {
  expected += sessionsBetween(clock.now(), clock.now() + DAY);
  await pump(DAY, 60_000);
}
await pump(DAY, 60_000); // every session of the last day gets its pass
const steadyCalls = calls() - callsBefore;
const hours = (clock.now() - steadyFrom) / HOUR;
const perChargerHour = steadyCalls / N / hours;
const missing = expected - count('SELECT count(*) AS n FROM charging_sessions');
const steady = `steady state, ${DAYS} days of ${PER_DAY} sessions per charger-day, none pushed: ${steadyCalls} charge-history calls = ${perChargerHour.toFixed(4)} per charger-hour (target < 0.01: ${perChargerHour < 0.01 ? 'met' : 'MISSED'}); ${missing} of ${expected} sessions missing`;
console.log(steady);
await sync.stop();
await client.close();
await sim.stop();
db.close();
rmSync(dir, { recursive: true, force: true });
record(
  'sessions',
  `npm run bench:sessions -- --chargers ${N} --days ${DAYS} --backfill-days ${BACKFILL_DAYS}`,
  `${backfill}; ${steady}`,
);
