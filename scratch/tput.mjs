import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { Simulation } from '../dist/simulator/simulation.js';

const N = Number(process.argv[2] ?? 20000);
const sim = new Simulation({ fleet: { installations: 10, chargersPerInstallation: 100, seed: 3 } });
await sim.start();
const db = '/tmp/tput.db';
for (const f of [db, db + '-wal', db + '-shm']) {
  try {
    (await import('node:fs')).rmSync(f);
  } catch {}
}
const child = spawn(process.execPath, ['dist/cli.js', 'run'], {
  env: { ...process.env, ...sim.env(), ZAPTEC_DB: db, LOG_LEVEL: 'warn' },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
let r;
for (;;) {
  await wait(500);
  try {
    r ??= new Database(db, { readonly: true });
    if (r.prepare("select count(*) n from sync_status where events='connected'").get().n === 10) break;
  } catch {}
}
console.log('connected');
const chargers = [...sim.fleet.chargers.values()];
const t0 = Date.now() + 3600000;
const start = Date.now();
for (let i = 0; i < N; i += 80) {
  for (let k = i; k < i + 80; k++) {
    const c = chargers[k % 1000];
    sim.publish(sim.fleet.set(c.id, 513 + (Math.floor(k / 1000) % 10), String(k), t0 + k));
  }
  await wait(10);
}
console.log('published in', Date.now() - start);
for (let s = 0; s < 60; s++) {
  await wait(1000);
  const n = r
    .prepare('select count(*) n from charger_state_history where observed_at >= ?')
    .get(new Date(t0).toISOString()).n;
  const st = sim.broker.stats(
    sim.channel([...sim.fleet.installations.keys()][0]).topic,
    sim.channel([...sim.fleet.installations.keys()][0]).subscription,
  );
  console.log(Math.round((Date.now() - start) / 1000), 's', n, 'committed', JSON.stringify(st).slice(0, 80));
  if (n >= N) break;
}
child.kill('SIGTERM');
await wait(1000);
await sim.stop();
process.exit(0);
