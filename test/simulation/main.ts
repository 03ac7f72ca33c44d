/**
 * `npm run test:simulate -- --seed N --days D`: one simulated run, replaying a failure from its seed or
 * measuring a long one. Prints a line per simulated day and the run's figures as JSON at the end.
 * Options: --seed (1), --days (30), --installations (10), --chargers-per-installation (20),
 * --sessions realistic|busy|flapping (realistic), --no-faults, --user-group (a user group carrying the first
 * installation), --set NAME=value (a setting of the daemon; repeatable), --load-manager (commands through the daemon, and their
 * invariants), --store postgresql (the daemon on a throwaway PostgreSQL of this host, a daemon restart a handover: the active one killed, its lease cut, frozen for a minute, or the server restarted under it, in turn). SIM_DEBUG=1 prints each fault as it comes and each
 * wait for real I/O given up.
 */
import { parseArgs } from 'node:util';
import { benchPostgres } from '../../bench/postgres.js';
import { SESSION_PATTERNS, type SessionPattern } from '../../src/simulator/patterns.js';
import { SimulationFailure, simulate } from './world.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    days: { type: 'string', default: '30' },
    installations: { type: 'string', default: '10' },
    'chargers-per-installation': { type: 'string', default: '20' },
    sessions: { type: 'string', default: 'realistic' },
    'no-faults': { type: 'boolean', default: false },
    'user-group': { type: 'boolean', default: false },
    set: { type: 'string', multiple: true, default: [] },
    'load-manager': { type: 'boolean', default: false },
    store: { type: 'string', default: 'sqlite' },
  },
});
if (!['sqlite', 'postgresql'].includes(values.store)) {
  console.error('--store must be sqlite or postgresql');
  process.exit(2);
}
const pg = values.store === 'postgresql' ? await benchPostgres('simulation') : undefined;
if (values.store === 'postgresql' && !pg) process.exit(2);
/** `--set NAME=value` (repeatable): a setting of the simulated daemon, e.g. ZAPTEC_RECONCILE_MAX_MINUTES=60. */
const env = Object.fromEntries(
  values.set.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const),
);
const pattern = values.sessions as SessionPattern;
if (!SESSION_PATTERNS.includes(pattern)) {
  console.error(`--sessions must be one of ${SESSION_PATTERNS.join(', ')}`);
  process.exit(2);
}
try {
  const report = await simulate({
    seed: Number(values.seed),
    days: Number(values.days),
    installations: Number(values.installations),
    chargersPerInstallation: Number(values['chargers-per-installation']),
    pattern,
    faults: !values['no-faults'],
    userGroup: values['user-group'],
    env,
    loadManager: values['load-manager'],
    ...(pg ? { postgres: pg.location, postgresServer: pg } : {}),
    onDay: (day, r) =>
      console.log(
        `day ${day}: ${r.calls} calls (${r.callsPerChargerHour.toFixed(2)} per charger-hour), ${r.published} observations pushed, ${Object.values(r.faults).reduce((a, b) => a + (b ?? 0), 0)} faults, ${r.checks} checks, ${(r.realMs / 1000).toFixed(0)} s`,
      ),
  });
  console.log(JSON.stringify(report));
  await pg?.stop();
  process.exit(0);
} catch (err) {
  console.error(err instanceof SimulationFailure ? err.message : err);
  await pg?.stop();
  process.exit(1);
}
