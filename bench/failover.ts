/**
 * `npm run bench:failover`: handovers between two instances of one PostgreSQL schema (CONTRACT §9, issue 28
 * §4). Two `zaptec-sync run` on a throwaway PostgreSQL, a simulated fleet publishing a steady stream (20
 * changes every 100 ms); `--kills` times (default 20) the active one is SIGKILLed and started again as the
 * new standby. Per handover: from the kill to the survivor's first API call, and to the first observation it
 * stored (a history row received after the kill); messages given back to the broker's queues for another
 * delivery. At the end every published value must be current. Target: takeover within 30 s.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Simulation } from '../src/simulator/simulation.js';
import { CLI, sleep } from './harness.js';
import { record } from './machine.js';
import { benchPostgres } from './postgres.js';

const { values } = parseArgs({ options: { kills: { type: 'string', default: '20' } } });
const KILLS = Number(values.kills);
const TARGET_MS = 30_000;

const db = await benchPostgres('failover');
if (!db) process.exit(0);
const { pool, location } = db;
const sim = new Simulation({ fleet: { seed: 5, installations: 4, chargersPerInstallation: 25 } });
await sim.start();

const hosts = [sim.rest.url, sim.rest.url.replace('127.0.0.1', 'localhost')];
const env = (i: number): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  ...sim.env(),
  ZAPTEC_API_URL: hosts[i]!,
  ZAPTEC_DB: location.url,
  ZAPTEC_PG_SCHEMA: location.schema,
  ZAPTEC_EVENTS: 'on',
  LOG_LEVEL: 'warn',
});
// The password through the environment of the child only: ZAPTEC_DB carries none.
const withPassword = (i: number) => {
  const u = new URL(location.url);
  u.password = encodeURIComponent(location.password ?? '');
  return { ...env(i), ZAPTEC_DB: u.toString() };
};
const instances: (ChildProcess | undefined)[] = [undefined, undefined];
const start = (i: number) => {
  const child = spawn(process.execPath, [CLI, 'run'], {
    env: withPassword(i),
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  instances[i] = child;
  return child;
};
const hostOf = (i: number) => new URL(hosts[i]!).host;
const activePid = async () =>
  (await pool.query<{ pid: number }>(`SELECT pid FROM daemons WHERE role = 'active'`)).rows.map((r) => r.pid);

const chargers = [...sim.fleet.chargers.values()];
let n = 0;
const newest = new Map<string, string>();
const stream = setInterval(() => {
  for (let i = 0; i < 20; i++, n++) {
    const c = chargers[n % chargers.length]!;
    const o = sim.fleet.set(c.id, 513, String(n), Date.now());
    sim.publish(o);
    newest.set(c.id, o.value ?? '');
  }
}, 100);

const requeued = () =>
  [...sim.fleet.installations.keys()].reduce((sum, id) => {
    const ch = sim.channel(id);
    return sum + sim.broker.stats(ch.topic, ch.subscription).requeued;
  }, 0);

async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  ms = 60_000,
): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    await sleep(50);
  }
  throw new Error(`timed out: ${what}`);
}

start(0);
await until('the first active', async () =>
  (await activePid()).includes(instances[0]!.pid!) ? true : undefined,
);
start(1);
await sleep(5_000);
const toCall: number[] = [];
const toStore: number[] = [];
const redelivered: number[] = [];
for (let k = 0; k < KILLS; k++) {
  const pids = await activePid();
  const victim = instances.findIndex((c) => c && pids.includes(c.pid!));
  if (victim < 0) throw new Error('no active instance');
  const survivor = 1 - victim;
  const before = requeued();
  const killedAt = Date.now();
  const killedIso = new Date(killedAt).toISOString();
  instances[victim]!.kill('SIGKILL');
  const call = await until('the survivor’s first API call', () =>
    sim.rest.requests.find((r) => r.host === hostOf(survivor) && r.at >= killedAt),
  );
  toCall.push(call.at - killedAt);
  const stored = await until('the survivor’s first stored observation', async () => {
    const r = await pool.query<{ at: string | null }>(
      'SELECT min(received_at) AS at FROM charger_state_history WHERE received_at > $1',
      [killedIso],
    );
    return r.rows[0]?.at ?? undefined;
  });
  toStore.push(Date.parse(stored) - killedAt);
  await sleep(3_000);
  redelivered.push(requeued() - before);
  start(victim);
  await sleep(4_000);
  process.stdout.write(
    `handover ${k + 1}: first API call ${toCall.at(-1)} ms, first stored ${toStore.at(-1)} ms, requeued ${redelivered.at(-1)}\n`,
  );
}
clearInterval(stream);
await sleep(3_000);
const current = new Map(
  (
    await pool.query<{ charger_id: string; value: string }>(
      'SELECT charger_id, value FROM charger_state WHERE state_id = 513',
    )
  ).rows.map((r) => [r.charger_id, r.value]),
);
const lost = [...newest].filter(([id, v]) => current.get(id) !== v).length;
const tooMany = sim.rest.rejected.length;
for (const c of instances) c?.kill('SIGTERM');
await sleep(2_000);
await sim.stop();
await db.stop();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const line =
  `${KILLS} SIGKILLs of the active (100 chargers, 200 obs/s): first API call after the kill median ${median(toCall)} ms, ` +
  `max ${Math.max(...toCall)} ms; first stored observation median ${median(toStore)} ms, max ${Math.max(...toStore)} ms; ` +
  `messages requeued per handover median ${median(redelivered)}, max ${Math.max(...redelivered)}; ` +
  `values not current at the end ${lost}; 429s ${tooMany}; target takeover ≤ ${TARGET_MS / 1000} s: ` +
  `${Math.max(...toCall, ...toStore) <= TARGET_MS && lost === 0 && tooMany === 0 ? 'met' : 'MISSED'}`;
console.log(line);
record('failover', `npm run bench:failover -- --kills ${KILLS}`, line);
